"""Measurement names (E2SM-KPM ``MeasurementTypeName``) that kdran reports and subscribes to.

The standard ones are 3GPP TS 28.552 names; the ``VS.`` (vendor-specific) ones relay the dApp's
channel-prediction health: online NMSE (dB, mean and 90th percentile over the granularity period),
the number of predictions scored and the number answered by the classical fallback.
"""

from __future__ import annotations

from typing import Final

CHPRED_NMSE_DB_MEAN: Final = "VS.ChPred.NmseDb.Mean"
"""Mean online NMSE of the active predictor over the period, dB (REAL)."""
CHPRED_NMSE_DB_P90: Final = "VS.ChPred.NmseDb.P90"
"""90th percentile of the online NMSE over the period, dB (REAL)."""
CHPRED_COUNT: Final = "VS.ChPred.Count"
"""Predictions scored in the period (INTEGER)."""
CHPRED_FALLBACK: Final = "VS.ChPred.Fallback"
"""Predictions answered by the AR/Wiener fallback in the period (INTEGER)."""
DRB_UE_THP_DL: Final = "DRB.UEThpDl"
"""Average DL UE throughput, kbit/s (TS 28.552 5.1.1.3.1)."""
TB_TOT_NBR_DL: Final = "TB.TotNbrDl"
"""Total number of DL transport blocks (TS 28.552 5.1.1.7)."""
TB_ERR_TOTAL_NBR_DL: Final = "TB.ErrTotalNbrDl"
"""Number of erroneous DL transport blocks (TS 28.552 5.1.1.7)."""
RRU_PRB_USED_DL: Final = "RRU.PrbUsedDl"
"""DL PRBs used, mean over the period (TS 28.552 5.1.1.2)."""

KDRAN_MEASUREMENTS: Final[tuple[str, ...]] = (
    CHPRED_NMSE_DB_MEAN,
    CHPRED_NMSE_DB_P90,
    CHPRED_COUNT,
    CHPRED_FALLBACK,
    DRB_UE_THP_DL,
    TB_TOT_NBR_DL,
    TB_ERR_TOTAL_NBR_DL,
    RRU_PRB_USED_DL,
)
"""Every measurement kdran uses, in the order the xApp subscribes to them."""

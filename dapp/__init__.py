"""The dApp: a sub-millisecond channel/beam predictor next to the DU (no torch, ever).

Map of the package (one concept per module):

- ``runner``      ONNX Runtime session of a ``csi.model_io`` model, IOBinding on pre-allocated
                  buffers (``OnnxRunner``; also a ``csi.predictors.Predictor``)
- ``artifact``    model artifact directories (model.onnx, card.json, SHA256SUMS), task checks
- ``history``     per-UE ring buffers of SRS estimates, idle/LRU eviction
- ``scoring``     online NMSE: predictions scored when the SRS of their slot arrives
- ``fallback``    AR/Wiener fallback with codebook beam scores
- ``engine``      the core: model slots (active/shadow), fallback, shadow, scoring
- ``store``       on-disk model store and state file (last known good)
- ``manager``     model lifecycle: deploy, promote, rollback, discard, restore
- ``metrics``     Prometheus metrics (docs/METRICS.md)
- ``messages``    plain data shared by core, gRPC layer and client
- ``convert``     protobuf <-> numpy conversions (kdran.v1)
- ``limits``      message and upload size limits, per-client service limits
- ``ratelimit``   token bucket (per-stream message rate)
- ``verify``      model signature checks (``kdran.signing``) as dApp errors
- ``tls``         gRPC TLS / mutual TLS credentials from PEM files (``ServerTls``, ``ClientTls``)
- ``service``     gRPC servicers (ChannelPredictor, ModelManager)
- ``server``      assembly: engine + manager + gRPC server + health + reflection
- ``client``      thin typed client (DU emulator, xApp, benchmark)
- ``cli``         ``kdran dapp serve``, ``kdran bench latency`` and ``kdran bench load``
- ``load``        the load benchmark: N streams x M UEs with a rollout during the run
- ``bench``       the latency benchmark; ``flops`` its FLOP count and nominal peak
- ``onnx_models`` small ONNX models built with onnx.helper (tests, synthetic benchmark student)
- ``errors``      request errors carrying their gRPC status codes
"""

"""The dApp image has no torch: every dapp module must import without it."""

from __future__ import annotations

import subprocess
import sys

_CODE = """
import importlib, pkgutil, sys
import dapp
names = sorted('dapp.' + m.name for m in pkgutil.iter_modules(dapp.__path__))
for name in names:
    importlib.import_module(name)
assert 'torch' not in sys.modules, 'torch was imported by a dapp module'
print(len(names))
"""

_CLIENT_CODE = """
import sys
import dapp.client
heavy = sorted(m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules)
assert not heavy, f'dapp.client imported {heavy}'
"""


def test_every_dapp_module_imports_without_torch() -> None:
    out = subprocess.run([sys.executable, "-c", _CODE], check=True, capture_output=True,
                         text=True)
    assert int(out.stdout.strip()) >= 15


def test_client_is_light() -> None:
    subprocess.run([sys.executable, "-c", _CLIENT_CODE], check=True)

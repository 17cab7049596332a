"""QONNX exports pass onnx.checker and, executed by an independent numpy
implementation of the operators (written here from the QONNX and ONNX
specifications), give outputs bit-identical to ddaq's integer reference on
10,200 inputs."""
import os
import subprocess
import tempfile

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

FIXTURE = os.environ.get("DDAQ_QONNX_FIXTURE", "build/tests/qonnx_fixture")


def quant(x, scale, zeropt, bitwidth, signed, narrow, rounding_mode):
    # QONNX Quant: scale, clip to the integer range, round, rescale.
    q = x / scale + zeropt
    if signed:
        lo, hi = -(2 ** (bitwidth - 1)) + (1 if narrow else 0), 2 ** (bitwidth - 1) - 1
    else:
        lo, hi = 0, 2 ** bitwidth - 1 - (1 if narrow else 0)
    q = np.clip(q, lo, hi)
    q = {"ROUND": np.round, "FLOOR": np.floor, "CEIL": np.ceil}[rounding_mode](q)
    return (q - zeropt) * scale


def conv2d(x, w, b, stride, pad):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, o, ho, wo))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i: i + stride * ho: stride, j: j + stride * wo: stride]  # n, c, ho, wo
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return y + (b.reshape(1, -1, 1, 1) if b is not None else 0)


def conv_transpose2d(x, w, b, stride, pad, out_pad):
    n, c, h, wd = x.shape
    _, o, kh, kw = w.shape
    full_h, full_w = (h - 1) * stride + kh, (wd - 1) * stride + kw
    y = np.zeros((n, o, full_h + out_pad, full_w + out_pad))
    for i in range(kh):
        for j in range(kw):
            y[:, :, i: i + stride * h: stride, j: j + stride * wd: stride] += np.einsum("nchw,co->nohw", x, w[:, :, i, j])
    ho, wo = full_h - 2 * pad + out_pad, full_w - 2 * pad + out_pad
    y = y[:, :, pad: pad + ho, pad: pad + wo]
    return y + (b.reshape(1, -1, 1, 1) if b is not None else 0)


def run(model, x):
    env = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    env[model.graph.input[0].name] = x
    for node in model.graph.node:
        a = {at.name: onnx.helper.get_attribute_value(at) for at in node.attribute}
        ins = [env[i] for i in node.input]
        op = node.op_type
        if op == "Quant":
            assert node.domain == "qonnx.custom_op.general"
            # A scale may be one per channel (1-D, broadcast over the last axis).
            r = quant(ins[0], ins[1], float(ins[2]), int(ins[3]), a["signed"], a["narrow"],
                      a["rounding_mode"].decode())
        elif op == "MatMul":
            r = ins[0] @ ins[1]
        elif op == "Add":
            r = ins[0] + ins[1]
        elif op == "Relu":
            r = np.maximum(ins[0], 0)
        elif op == "Flatten":
            r = ins[0].reshape(ins[0].shape[0], -1)
        elif op == "Identity":
            r = ins[0]
        elif op == "Conv":
            r = conv2d(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a["strides"][0], a["pads"][0])
        elif op == "ConvTranspose":
            r = conv_transpose2d(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a["strides"][0], a["pads"][0],
                                 a.get("output_padding", [0, 0])[0])
        else:
            raise AssertionError(f"unexpected operator {op}")
        env[node.output[0]] = r
    return env[model.graph.output[0].name]


def test_qonnx_exports_are_valid_and_bit_exact():
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([FIXTURE, tmp], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        total = 0
        count = int(r.stdout.split()[0])
        assert count >= 4  # the per-element-width model included
        for k in range(count):
            model = onnx.load(os.path.join(tmp, f"model{k}.onnx"))
            onnx.checker.check_model(model)
            assert {o.domain: o.version for o in model.opset_import}[""] == 11
            assert any(p.key == "ddaq_version" for p in model.metadata_props)
            x = np.load(os.path.join(tmp, f"inputs{k}.npy"))
            expected = np.load(os.path.join(tmp, f"expected{k}.npy"))
            y = run(model, x).reshape(len(x), -1)
            mismatches = int((y != expected).sum())
            print(f"model {k}: {len(x)} inputs, {expected.size} outputs, {mismatches} mismatches, "
                  f"{int((expected != 0).sum())} non-zero")
            assert mismatches == 0
            total += len(x)
        assert total >= 10000

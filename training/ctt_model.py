"""ctt-cnn3d-v1: the compact 3-D CNN of ct-triage, and its export.

The network uses only operations that burn 0.22 and ONNX Runtime both run
without 3-D pooling: Conv3d (+ BatchNorm3d, folded into the convolution at
export) + ReLU, strided convolutions for downsampling, global average pooling
and one Linear layer with all heads.

Layers (input 1 x 32^3 at 1 mm):
  conv1  1->16 k3 s2  (16^3)
  conv2 16->32 k3 s2  (8^3)
  conv3 32->32 k3 s1  (8^3)
  conv4 32->64 k3 s2  (4^3)
  conv5 64->64 k3 s1  (4^3)
  global average pool -> 64 -> Linear -> 7 logits
Output columns (manifest order): nodule, malignancy, solid, part_solid,
ground_glass (softmax group "type"), calcified, spiculation.
"""
import json

import numpy as np
import torch
from torch import nn

ARCHITECTURE = "ctt-cnn3d-v1"
CHANNELS = [(1, 16, 2), (16, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1)]
OUTPUTS = [
    ("nodule", "sigmoid", "probability that the candidate is a true lung nodule (>= 3 mm, LIDC-IDRI reader-annotated) rather than a vessel, bifurcation, airway wall, fissure, pleura or plain lung"),
    ("malignancy", "sigmoid", "probability that LIDC-IDRI radiologists would rate the nodule's malignancy above 3 (median of readers; 4-5 vs 1-2), calibrated on validation patients; NOT a biopsy-proven malignancy"),
    ("solid", "softmax:type", "nodule type: solid (LIDC texture 5)"),
    ("part_solid", "softmax:type", "nodule type: part-solid (LIDC texture 3-4)"),
    ("ground_glass", "softmax:type", "nodule type: ground glass / non-solid (LIDC texture 1-2)"),
    ("calcified", "sigmoid", "probability that readers would report a calcification pattern (LIDC calcification 1-5)"),
    ("spiculation", "sigmoid", "readers' spiculation rating mapped to 0-1 ((median-1)/4); a severity score, not a probability"),
]


class Net(nn.Module):
    """ctt-cnn3d-v1 (training form, with BatchNorm and dropout)."""

    def __init__(self, dropout=0.2, hidden=0, aux=0):
        super().__init__()
        layers = []
        for cin, cout, s in CHANNELS:
            layers += [nn.Conv3d(cin, cout, 3, stride=s, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        c = CHANNELS[-1][1]
        self.hidden = nn.Sequential(nn.Linear(c, hidden), nn.ReLU(inplace=True)) if hidden else None
        self.head = nn.Linear(hidden or c, len(OUTPUTS) + aux)

    def forward(self, x):
        x = self.features(x)
        x = x.mean(dim=(2, 3, 4))
        if self.hidden is not None:
            x = self.hidden(x)
        return self.head(self.drop(x))


def folded_weights(net: Net, mal_scale: float = 1.0, mal_shift: float = 0.0):
    """Conv+BN folded into conv weight/bias; the malignancy row of the head mapped
    through the calibration z -> mal_scale * z + mal_shift (Platt scaling; a
    temperature T is mal_scale = 1/T). Returns an ordered dict name -> float32 array."""
    net = net.eval()
    out = {}
    convs = [m for m in net.features if isinstance(m, nn.Conv3d)]
    bns = [m for m in net.features if isinstance(m, nn.BatchNorm3d)]
    for i, (c, bn) in enumerate(zip(convs, bns), start=1):
        w = c.weight.detach().double()
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        out[f"conv{i}.weight"] = (w * scale[:, None, None, None, None]).float().numpy()
        out[f"conv{i}.bias"] = (bn.bias.detach().double() - bn.running_mean.double() * scale).float().numpy()
    hw = net.head.weight.detach().double().clone()
    hb = net.head.bias.detach().double().clone()
    hw[1] *= mal_scale
    hb[1] = hb[1] * mal_scale + mal_shift
    out["head.weight"] = hw.float().numpy()
    out["head.bias"] = hb.float().numpy()
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def reference_forward(weights, x):
    """Plain torch forward of the folded network (what ONNX/burn compute)."""
    import torch.nn.functional as F
    h = torch.from_numpy(x)
    for i, (_, _, s) in enumerate(CHANNELS, start=1):
        h = F.relu(F.conv3d(h, torch.from_numpy(weights[f"conv{i}.weight"]), torch.from_numpy(weights[f"conv{i}.bias"]), stride=s, padding=1))
    h = h.mean(dim=(2, 3, 4))
    return (h @ torch.from_numpy(weights["head.weight"]).T + torch.from_numpy(weights["head.bias"])).numpy()


def write_onnx(weights, path, input_name="patch", output_name="logits", patch=32):
    """Write the folded network as an ONNX graph (opset 17) with the onnx helper API."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    cur = input_name
    for i, (_, _, s) in enumerate(CHANNELS, start=1):
        w, b = f"conv{i}.weight", f"conv{i}.bias"
        inits += [numpy_helper.from_array(weights[w], w), numpy_helper.from_array(weights[b], b)]
        nodes.append(helper.make_node("Conv", [cur, w, b], [f"c{i}"], kernel_shape=[3, 3, 3], pads=[1] * 6, strides=[s] * 3, name=f"conv{i}"))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        cur = f"r{i}"
    nodes.append(helper.make_node("GlobalAveragePool", [cur], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1, name="flatten"))
    inits += [numpy_helper.from_array(weights["head.weight"], "head.weight"), numpy_helper.from_array(weights["head.bias"], "head.bias")]
    nodes.append(helper.make_node("Gemm", ["flat", "head.weight", "head.bias"], [output_name], transB=1, name="head"))
    graph = helper.make_graph(
        nodes, ARCHITECTURE,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 1, patch, patch, patch])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", len(OUTPUTS)])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="ct-triage training/ctt_model.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def write_safetensors(weights, path, metadata):
    from safetensors.numpy import save_file
    save_file(weights, path, metadata={k: (v if isinstance(v, str) else json.dumps(v)) for k, v in metadata.items()})

# SPDX-License-Identifier: Apache-2.0
"""The models insitugen ships (ordinary PyTorch; :func:`golden.mlgify.mlgify`
turns them into MLG students).

* ``resnet18``: the CIFAR variant of the MLG reference (3x3 stem, stride 1, no
  max-pool, classifier without bias): 11,173,952 parameters for 10 classes.
* ``smallcnn``: four 3x3 convs (32-64-64-128, one stride 2) + global average pool +
  linear classifier, for small images such as scikit-learn's 8x8 digits.
* ``mobilenetv2``: the CIFAR variant of MobileNetV2 (stride 1 stem and first stages;
  1x1 expand, 3x3 depthwise, 1x1 project; 1x1 shortcut conv where channels change).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from insitugen.errors import InsitugenError


# ---------------------------------------------------------------------------------
# ResNet-18 (CIFAR)
# ---------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCIFAR(nn.Module):
    def __init__(self, num_blocks=(2, 2, 2, 2), num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers = []
        for planes, n, stride in zip((64, 128, 256, 512), num_blocks, (1, 2, 2, 2), strict=True):
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(BasicBlock(self.in_planes, planes, s))
                self.in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.linear = nn.Linear(512, num_classes, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def resnet18(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    return ResNetCIFAR((2, 2, 2, 2), num_classes, in_channels)


# ---------------------------------------------------------------------------------
# small CNN
# ---------------------------------------------------------------------------------
class SmallCNN(nn.Module):
    """conv3x3(C->32) - conv3x3(32->64) - conv3x3(64->64, stride 2) - conv3x3(64->128),
    each followed by BatchNorm and ReLU; global average pool; linear(128 -> classes)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1,
                 widths=(32, 64, 64, 128)):
        super().__init__()
        layers, c = [], in_channels
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c, w, 3, stride=2 if i == 2 else 1, padding=1, bias=False),
                       nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        out = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(out)


def smallcnn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    return SmallCNN(num_classes, in_channels)


# ---------------------------------------------------------------------------------
# MobileNetV2 (CIFAR)
# ---------------------------------------------------------------------------------
class InvertedResidual(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, expansion: int, stride: int):
        super().__init__()
        self.stride = stride
        planes = expansion * in_planes
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, groups=planes,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()
        if stride == 1 and in_planes != out_planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, bias=False),
                                          nn.BatchNorm2d(out_planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.stride == 1 else out


class MobileNetV2CIFAR(nn.Module):
    # (expansion, out_planes, num_blocks, stride); stride 1 in the first stages for 32x32
    CFG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        blocks, c = [], 32
        for expansion, out_planes, n, stride in self.CFG:
            for s in [stride] + [1] * (n - 1):
                blocks.append(InvertedResidual(c, out_planes, expansion, s))
                c = out_planes
        self.layers = nn.Sequential(*blocks)
        self.conv2 = nn.Conv2d(320, 1280, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(1280)
        self.linear = nn.Linear(1280, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(self.layers(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def mobilenetv2(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    return MobileNetV2CIFAR(num_classes, in_channels)


#: name -> (constructor, default input channels, default image size)
MODELS = {
    "resnet18": (resnet18, 3, 32),
    "smallcnn": (smallcnn, 1, 8),
    "mobilenetv2": (mobilenetv2, 3, 32),
}


def build_model(name: str, num_classes: int = 10, in_channels: int | None = None) -> nn.Module:
    """A shipped model by name (see :data:`MODELS`), freshly initialized."""
    if name not in MODELS:
        raise InsitugenError(f"unknown model '{name}': use one of {', '.join(MODELS)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InsitugenError(f"num_classes = {num_classes!r} must be a positive integer")
    ctor, default_in, _ = MODELS[name]
    in_channels = default_in if in_channels is None else in_channels
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise InsitugenError(f"in_channels = {in_channels!r} must be a positive integer")
    return ctor(num_classes=num_classes, in_channels=in_channels)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


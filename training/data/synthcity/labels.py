"""Train ids of the classes SynthCity draws, and its mapping to Cityscapes labelIds."""

from __future__ import annotations

import numpy as np

from training.data.layouts import CITYSCAPES_LUT
from zoo.datasets import get_dataset_info

C = {name: i for i, name in enumerate(get_dataset_info("synthcity").classes)}
SKY, ROAD, SIDEWALK, TERRAIN = C["sky"], C["road"], C["sidewalk"], C["terrain"]
BUILDING, WALL, FENCE, VEGETATION = C["building"], C["wall"], C["fence"], C["vegetation"]
POLE, LIGHT, SIGN = C["pole"], C["traffic light"], C["traffic sign"]
PERSON, RIDER, CAR, TRUCK, BUS, BICYCLE = (
    C["person"], C["rider"], C["car"], C["truck"], C["bus"], C["bicycle"]
)  # fmt: skip
EGO = 254  # ego vehicle: Cityscapes labelId 1, ignored in training
EGO_LABEL_ID = 1

# train id -> Cityscapes labelId (the inverse of the reader's table); EGO -> ego vehicle.
TRAIN_TO_LABEL_ID = np.zeros(256, np.uint8)
TRAIN_TO_LABEL_ID[CITYSCAPES_LUT[CITYSCAPES_LUT != 255]] = np.flatnonzero(CITYSCAPES_LUT != 255)
TRAIN_TO_LABEL_ID[EGO] = EGO_LABEL_ID

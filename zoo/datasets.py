"""The dataset table: one `DatasetInfo` row per dataset; nothing here imports torch.

A row holds what a model needs to know about its labels (class names, palette, mean/std,
ignore index) and what training needs to know about the dataset: its on-disk layout (a
`training.data.layouts` family), its label table (the raw annotation value of each train id)
and its recipe defaults (crop, batch, schedule). Layouts, recipes, registry ids and test
parametrisations are derived from `DATASETS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from zoo.lookup import lookup

IGNORE_INDEX = 255
# The dataset of a recipe trained on a user's own data (a folder with dataset.json, or a
# Hugging Face dataset): its classes come from the data, not from a row of this table.
CUSTOM = "custom"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Color = tuple[int, int, int]


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about the labels it was trained on."""

    name: str
    title: str
    classes: tuple[str, ...]
    palette: tuple[Color, ...]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    ignore_index: int = IGNORE_INDEX
    url: str = ""
    layout: str = ""  # on-disk layout family (`training.data.layouts`); "" = none
    # The raw annotation value of each train id (the label table); () = labels are train ids.
    raw_ids: tuple[int, ...] = ()
    # Recipe defaults for this dataset (`training.recipes`); `crop_size` is also the default
    # inference window of its models.
    recipe: Mapping[str, Any] = field(default_factory=dict)
    # Part of the published zoo (registry ids, Hub repos, model cards)?
    published: bool = False

    def __post_init__(self) -> None:
        if len(self.palette) != len(self.classes):
            raise ValueError(
                f"dataset {self.name}: {len(self.palette)} colours for {len(self.classes)} classes"
            )
        if self.raw_ids and len(self.raw_ids) != len(self.classes):
            raise ValueError(
                f"dataset {self.name}: {len(self.raw_ids)} raw ids for {len(self.classes)} classes"
            )
        object.__setattr__(self, "recipe", MappingProxyType(dict(self.recipe)))

    @property
    def num_classes(self) -> int:
        """Number of classes (length of `classes`)."""
        return len(self.classes)

    @property
    def crop_size(self) -> tuple[int, int]:
        """Training crop (height, width): the default inference window of its models."""
        try:
            height, width = self.recipe["crop_size"]
        except KeyError:
            raise ValueError(f"dataset {self.name} has no recipe crop_size") from None
        return int(height), int(width)


def distinct_palette(n: int) -> tuple[Color, ...]:
    """`n` fixed, well-separated colours: greedy farthest-point picks from an RGB grid (each
    new colour is the grid colour farthest from all chosen so far), so the first classes get
    the most distinct colours and no two colours are close (>= 45 apart in RGB for 171)."""
    import numpy as np

    levels = np.arange(0, 256, 15, dtype=np.float64)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    chosen = [np.array([230.0, 25.0, 75.0])]  # a red to start from
    distance = np.linalg.norm(grid - chosen[0], axis=1)
    while len(chosen) < n:
        pick = grid[int(np.argmax(distance))]
        chosen.append(pick)
        distance = np.minimum(distance, np.linalg.norm(grid - pick, axis=1))
    return tuple((int(r), int(g), int(b)) for r, g, b in chosen[:n])


# Cityscapes: the 19 evaluation classes ("train ids") with their official colours.
_CITYSCAPES = (
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)),
    ("fence", (190, 153, 153)),
    ("pole", (153, 153, 153)),
    ("traffic light", (250, 170, 30)),
    ("traffic sign", (220, 220, 0)),
    ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)),
    ("person", (220, 20, 60)),
    ("rider", (255, 0, 0)),
    ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)),
    ("bus", (0, 60, 100)),
    ("train", (0, 80, 100)),
    ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)),
)

# COCO-Stuff-164k: 80 things + 91 stuff classes, in the order of the stuffthingmaps ids after
# dropping the 11 unused thing ids (train ids 0..170).
COCOSTUFF_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush", "banner", "blanket", "branch", "bridge", "building-other", "bush",
    "cabinet", "cage", "cardboard", "carpet", "ceiling-other", "ceiling-tile", "cloth",
    "clothes", "clouds", "counter", "cupboard", "curtain", "desk-stuff", "dirt",
    "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone", "floor-tile",
    "floor-wood", "flower", "fog", "food-other", "fruit", "furniture-other", "grass",
    "gravel", "ground-other", "hill", "house", "leaves", "light", "mat", "metal",
    "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper", "pavement",
    "pillow", "plant-other", "plastic", "platform", "playingfield", "railing", "railroad",
    "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf", "sky-other",
    "skyscraper", "snow", "solid-other", "stairs", "stone", "straw", "structural-other",
    "table", "tent", "textile-other", "towel", "tree", "vegetable", "wall-brick",
    "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile", "wall-wood",
    "water-other", "waterdrops", "window-blind", "window-other", "wood",
)  # fmt: skip

# ADE20K (SceneParsing, ADEChallengeData2016): the 150 classes of objectInfo150, in order
# (train id = annotation value - 1; annotation 0 "other" is ignored).
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea",
    "mirror", "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe",
    "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table",
    "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind",
    "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine",
    "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel",
    "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike",
    "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot",
    "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen",
    "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip

_CITYSCAPES_CLASSES = tuple(name for name, _ in _CITYSCAPES)
_CITYSCAPES_PALETTE = tuple(color for _, color in _CITYSCAPES)
# Cityscapes labelIds of the 19 train ids (cityscapesscripts' labels.py).
CITYSCAPES_RAW_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
# COCO-Stuff-164k stuffthingmaps: ids 0..181 with 11 thing ids that COCO never used.
COCOSTUFF_UNUSED_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)

# Recipe defaults: public practice, MMSegmentation's 80k/160k schedules.
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "cityscapes", "Cityscapes", _CITYSCAPES_CLASSES, _CITYSCAPES_PALETTE,
            url="https://www.cityscapes-dataset.com/",
            layout="cityscapes",
            raw_ids=CITYSCAPES_RAW_IDS,
            recipe=dict(
                crop_size=(512, 1024), batch_size=8, iterations=80_000, lr=0.01,
                eval_mode="slide",
            ),
            published=True,
        ),
        DatasetInfo(
            "cocostuff", "COCO-Stuff-164k", COCOSTUFF_CLASSES,
            distinct_palette(len(COCOSTUFF_CLASSES)),
            url="https://github.com/nightrome/cocostuff",
            layout="cocostuff",
            raw_ids=tuple(raw for raw in range(182) if raw not in COCOSTUFF_UNUSED_IDS),
            recipe=dict(
                crop_size=(512, 512), batch_size=16, iterations=80_000, lr=0.01,
                eval_mode="whole",
            ),
            published=True,
        ),
        DatasetInfo(
            "ade20k", "ADE20K", ADE20K_CLASSES, distinct_palette(len(ADE20K_CLASSES)),
            url="https://groups.csail.mit.edu/vision/datasets/ADE20K/",
            layout="ade20k",
            raw_ids=tuple(range(1, 151)),  # 0 is "other" (ignored)
            recipe=dict(
                crop_size=(512, 512), batch_size=16, iterations=160_000, lr=0.01,
                eval_mode="whole", eval_interval=16_000,
            ),
            published=True,
        ),
        # Procedurally generated street scenes in the Cityscapes layout and label space, for
        # CPU experiments: small crops, a ~10-minute schedule on one core, no downloads
        # (random-init backbone), fp32. BatchNorm momentum 0.1: torchvision's MobileNetV3 uses
        # 0.01, whose running statistics lag far behind the weights in a run this short (val
        # pixel accuracy 0.50 with running statistics vs 0.80 with batch statistics after 400
        # iterations).
        DatasetInfo(
            "synthcity", "SynthCity", _CITYSCAPES_CLASSES, _CITYSCAPES_PALETTE,
            layout="cityscapes",
            raw_ids=CITYSCAPES_RAW_IDS,
            recipe=dict(
                crop_size=(128, 256), batch_size=4, iterations=600, lr=0.02, warmup_iters=50,
                pretrained_backbone=False, amp="none", sync_bn=False, eval_interval=300,
                checkpoint_interval=100, log_interval=20, eval_mode="whole", workers=1,
                bn_momentum=0.1,
            ),
        ),
    )
}  # fmt: skip


def get_dataset_info(name: str) -> DatasetInfo:
    """The row of dataset `name`; an unknown name lists the valid ones."""
    return lookup(DATASETS, name, "dataset")


def published_datasets() -> list[str]:
    """Names of the datasets of the published zoo, in table order."""
    return [name for name, info in DATASETS.items() if info.published]

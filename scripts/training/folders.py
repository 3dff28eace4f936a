"""Published matting datasets as folders: foreground frames, alpha frames, background images.

VideoMatte240K and PhotoMatte85 come as folders of foreground (`fgr`) and alpha (`pha`) images with
matching relative paths (for videos, one sub-folder per clip), plus a separate folder of background
photographs. Each sample composites a foreground over a background chosen by the sample's seed and
derives the background shot as the synthetic set does.
"""
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from torch.nn import functional as F

from bgmv2.data.background_shot import background_shot, cast_shadow, sensor_noise, uniform

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


class DatasetError(ValueError):
    """A dataset folder that cannot be used; the message says what is wrong."""


def image_files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: Path, channels: int) -> torch.Tensor:
    from PIL import Image
    with Image.open(path) as image:
        image = image.convert("RGB" if channels == 3 else "L")
        array = np.asarray(image, dtype=np.float32) / 255
    tensor = torch.from_numpy(array)
    return tensor.permute(2, 0, 1) if channels == 3 else tensor[None]


def resize_crop(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Scale to cover (height, width), then centre-crop."""
    _, h, w = image.shape
    scale = max(height / h, width / w)
    size = (max(height, round(h * scale)), max(width, round(w * scale)))
    image = F.interpolate(image[None], size, mode="bilinear", align_corners=False, antialias=True)[0]
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return image[:, top:top + height, left:left + width].clamp(0, 1)


class FolderMattingSet(torch.utils.data.Dataset):
    def __init__(self, fgr_dir, pha_dir, bgr_dir, height: int, width: int, seed: int = 0, length: int = 0):
        self.fgr_dir, self.pha_dir, self.bgr_dir = Path(fgr_dir), Path(pha_dir), Path(bgr_dir)
        for name, folder in (("foreground", self.fgr_dir), ("alpha", self.pha_dir), ("background", self.bgr_dir)):
            if not folder.is_dir():
                raise DatasetError(f"{name} folder {folder} does not exist")
        fgr = {p.relative_to(self.fgr_dir).with_suffix(""): p for p in image_files(self.fgr_dir)}
        pha = {p.relative_to(self.pha_dir).with_suffix(""): p for p in image_files(self.pha_dir)}
        unpaired = sorted(set(fgr) ^ set(pha))
        if unpaired:
            raise DatasetError(f"{len(unpaired)} foreground/alpha frames have no partner (paired by relative "
                               f"path without suffix), e.g. {unpaired[0]}")
        self.pairs = [(fgr[k], pha[k]) for k in sorted(fgr)]
        self.backgrounds = image_files(self.bgr_dir)
        if not self.pairs or not self.backgrounds:
            raise DatasetError(f"no images found: {len(self.pairs)} foreground/alpha pairs in {self.fgr_dir} and "
                               f"{self.pha_dir}, {len(self.backgrounds)} backgrounds in {self.bgr_dir}")
        self.height, self.width, self.seed = height, width, seed
        self.length = length or len(self.pairs)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        fgr_path, pha_path = self.pairs[index % len(self.pairs)]
        h, w = self.height, self.width
        colour = resize_crop(read_image(fgr_path, 3), h, w)
        alpha = resize_crop(read_image(pha_path, 1), h, w)
        choice = int(torch.randint(len(self.backgrounds), (), generator=gen))
        background = resize_crop(read_image(self.backgrounds[choice], 3), h, w)
        if uniform(gen, 0, 1) < 0.5:
            colour, alpha, background = colour.flip(-1), alpha.flip(-1), background.flip(-1)
        src = alpha * colour + (1 - alpha) * cast_shadow(background, alpha, gen)
        src = sensor_noise(src, gen, uniform(gen, 0.0, 0.02))
        return {"src": src, "bgr": background_shot(background, gen), "pha": alpha, "fgr": colour}

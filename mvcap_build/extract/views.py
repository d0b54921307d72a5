"""From a chosen frame to a view: crop a square around the object, resize, and record the camera
in our convention (OpenCV c2w, intrinsics in output pixels, azimuth and elevation about the
object centre relative to the capture's up direction)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mvcap_build.extract.capture import Capture, Frame


@dataclass(frozen=True)
class Crop:
    left: float
    top: float
    side: float  # a square, in source pixels


def project(points: np.ndarray, c2w: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N, 2) of world points and whether each is in front of the camera."""
    w2c = np.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    in_front = cam[:, 2] > 1e-6
    pix = cam @ K.T
    return pix[:, :2] / np.where(np.abs(pix[:, 2:3]) < 1e-12, 1e-12, pix[:, 2:3]), in_front


def object_crop(frame: Frame, image: Image.Image, points: np.ndarray | None, margin: float) -> Crop | None:
    """A square around the object: from the projected sparse points (robust to strays) when the
    capture has them, else from the alpha mask; None when neither says where the object is."""
    box = None
    if points is not None and len(points):
        pix, in_front = project(points, frame.c2w, frame.K)
        inside = in_front & (pix[:, 0] >= 0) & (pix[:, 0] < frame.width) & (pix[:, 1] >= 0) & (pix[:, 1] < frame.height)
        if inside.sum() >= 8:
            low, high = np.percentile(pix[inside], 2, axis=0), np.percentile(pix[inside], 98, axis=0)
            box = (low[0], low[1], high[0], high[1])
    elif image.mode == "RGBA":
        alpha = np.asarray(image.getchannel("A")) > 127
        if alpha.any():
            rows, cols = np.nonzero(alpha)
            box = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    if box is None:
        return None
    side = min(max(box[2] - box[0], box[3] - box[1]) * margin, frame.width, frame.height)
    centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    left = min(max(centre_x - side / 2, 0.0), frame.width - side)
    top = min(max(centre_y - side / 2, 0.0), frame.height - side)
    return Crop(left, top, side)


def crop_and_resize(
    image: Image.Image, K: np.ndarray, crop: Crop | None, size: int | None, upsample: bool = False
) -> tuple[Image.Image, np.ndarray]:
    """The output image and its intrinsics: the principal point moves with the crop, and focal
    lengths and principal point scale with the resize. A crop smaller than `size` keeps its own
    size unless `upsample`: enlarged pixels would pass for detail the capture never had."""
    K = K.astype(np.float64).copy()
    if crop is not None:
        image = image.crop(
            (round(crop.left), round(crop.top), round(crop.left + crop.side), round(crop.top + crop.side))
        )
        K[0, 2] -= round(crop.left)
        K[1, 2] -= round(crop.top)
    if size is not None and max(image.size) < size and not upsample:
        return image, K
    if size is not None and image.size != (size, size) and (crop is not None or image.width == image.height):
        sx, sy = size / image.width, size / image.height
        image = image.resize((size, size), Image.LANCZOS)
        K[0, :] *= sx
        K[1, :] *= sy
    return image, K


def azimuth_basis(capture: Capture, frames: list[Frame]) -> tuple[np.ndarray, np.ndarray, str]:
    """(front, right) unit vectors in the plane normal to `up`: azimuth 0 looks at the object
    from `front`, 90 from `right`. A z-up world keeps our renders' convention (front = -y);
    otherwise azimuth 0 is the first frame's direction."""
    up = capture.up / np.linalg.norm(capture.up)
    if np.allclose(up, [0.0, 0.0, 1.0], atol=1e-6):
        front, how = np.array([0.0, -1.0, 0.0]), "azimuth 0 = world -y (as in renders)"
    else:
        first = frames[0].c2w[:3, 3] - capture.center
        front = first - (first @ up) * up
        how = f"azimuth 0 = direction of frame {frames[0].name}"
        if np.linalg.norm(front) < 1e-9:  # the first camera looks straight down: any horizontal axis
            front = np.cross(up, [1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.cross(up, [0.0, 1.0, 0.0])
    front = front / np.linalg.norm(front)
    return front, np.cross(up, front), how


def camera_record(
    c2w: np.ndarray, K: np.ndarray, width: int, height: int, capture: Capture, front: np.ndarray, right: np.ndarray
) -> dict:
    """Azimuth, elevation, distance about the object centre, field of view, K and c2w."""
    up = capture.up / np.linalg.norm(capture.up)
    offset = c2w[:3, 3] - capture.center
    distance = float(np.linalg.norm(offset))
    d = offset / max(distance, 1e-12)
    return {
        "azimuth_deg": round(math.degrees(math.atan2(d @ right, d @ front)) % 360.0, 6),
        "elevation_deg": round(math.degrees(math.asin(float(np.clip(d @ up, -1.0, 1.0)))), 6),
        "distance": distance,
        "fov_deg": math.degrees(2 * math.atan(width / (2 * K[0, 0]))),
        "intrinsics": K.tolist(),
        "c2w": c2w.tolist(),
        "width": width,
        "height": height,
    }

"""Built-in `plasmonic`: low-loss EELS of metal nanoparticles (rods, triangles, squares).

The physics the demo is about: inside a particle the bulk plasmon (~3.6-3.9 eV); along its
borders an edge mode (~1.9-2.5 eV), evanescent on both sides of the border; at its corners
a corner mode at still lower energy (~1.3-1.8 eV). Mode energies fall with particle size,
as for real dipolar/edge modes. Every spectrum also has the zero-loss peak with its tail,
and Poisson noise. The HAADF survey is the particle thickness (plus a faint support).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import polygon

from dkl.instruments.datasets import Dataset

PIXEL_NM = 2.0
ZLP_COUNTS = 2.0e4
MODE_COUNTS = 400.0
DECAY_EDGE_PX = 1.5
DECAY_CORNER_PX = 2.0


def _shape_vertices(kind: str, size_px: float, rng: np.random.Generator) -> np.ndarray:
    """Polygon vertices (N, 2) as (row, col) around the origin, randomly rotated."""
    if kind == "rod":
        half = np.array([[-0.5, -0.15], [-0.5, 0.15], [0.5, 0.15], [0.5, -0.15]])
    elif kind == "square":
        half = np.array([[-0.35, -0.35], [-0.35, 0.35], [0.35, 0.35], [0.35, -0.35]])
    else:  # equilateral triangle
        angles = np.deg2rad([90.0, 210.0, 330.0])
        half = 0.45 * np.stack([np.sin(angles), np.cos(angles)], axis=1)
    theta = rng.uniform(0, np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return (half @ rot.T) * size_px


def _place_particles(size: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray, float]]:
    """Non-overlapping particles: (kind, vertices in grid pixels, size in px)."""
    kinds = ["rod", "triangle", "square"]
    count = max(2, round(4 * (size / 64) ** 2))
    placed: list[tuple[str, np.ndarray, float]] = []
    centres: list[tuple[np.ndarray, float]] = []
    for i in range(200 * count):
        if len(placed) == count:
            break
        kind = kinds[len(placed) % 3] if i < 3 * count else kinds[int(rng.integers(3))]
        extent = rng.uniform(0.28, 0.42) * size
        radius = 0.55 * extent
        centre = rng.uniform(radius + 2, size - radius - 2, size=2)
        if any(np.hypot(*(centre - c)) < radius + r + 3 for c, r in centres):
            continue
        placed.append((kind, _shape_vertices(kind, extent, rng) + centre, extent))
        centres.append((centre, radius))
    if not placed:
        raise RuntimeError("could not place any particle; use a larger size")
    return placed


def generate(seed: int = 0, size: int = 64, channels: int = 128, noise: bool = True) -> Dataset:
    """Generate the `plasmonic` dataset (see the module docstring for the physics)."""
    rng = np.random.default_rng(seed)
    energy = np.linspace(-0.5, 4.5, channels)
    particles = _place_particles(size, rng)

    label = np.zeros((size, size), dtype=np.int32)
    for i, (_, verts, _) in enumerate(particles, start=1):
        rr, cc = polygon(verts[:, 0], verts[:, 1], shape=(size, size))
        label[rr, cc] = i
    inside = label > 0
    d_out, nearest = ndimage.distance_transform_edt(~inside, return_indices=True)
    d_in = ndimage.distance_transform_edt(inside)
    owner = np.where(inside, label, label[nearest[0], nearest[1]])
    d_border = np.where(inside, d_in - 0.5, d_out - 0.5).clip(min=0.0)

    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    d_corner = np.full((size, size), np.inf)
    e_bulk = np.zeros((size, size))
    e_edge = np.zeros((size, size))
    e_corner = np.zeros((size, size))
    for i, (_, verts, extent) in enumerate(particles, start=1):
        mine = owner == i
        dist = np.min(np.hypot(rows[..., None] - verts[:, 0], cols[..., None] - verts[:, 1]), -1)
        d_corner = np.where(mine, dist, d_corner)
        scale = extent / (0.35 * 64)  # bigger particles -> lower mode energies
        e_bulk[mine] = 3.8 + rng.normal(0, 0.05)
        e_edge[mine] = np.clip(2.45 - 0.45 * scale + rng.normal(0, 0.05), 1.8, 2.6)
        e_corner[mine] = np.clip(1.85 - 0.35 * scale + rng.normal(0, 0.05), 1.2, 1.9)

    thickness = np.where(inside, np.clip(d_in / 3.0, 0, 1) * 0.8 + 0.2, 0.0)
    bulk_h = MODE_COUNTS * thickness * (1 - np.exp(-d_in / 2.0)) * inside
    corner_h = MODE_COUNTS * 0.9 * np.exp(-d_corner / DECAY_CORNER_PX)
    edge_h = MODE_COUNTS * 0.7 * np.exp(-d_border / DECAY_EDGE_PX) * (1 - np.exp(-d_corner / 2.5))
    widths = {"bulk": 0.35, "edge": 0.22, "corner": 0.18}

    zlp_sigma = 0.06
    zlp = np.exp(-0.5 * (energy / zlp_sigma) ** 2)
    tail = np.where(energy > 0.1, (np.maximum(energy, 0.1) / 0.1) ** -2.2, 0.0) * 0.01
    intensity = ZLP_COUNTS * (1 - 0.3 * thickness)[..., None] * (zlp + tail)
    for height, centre, width in (
        (bulk_h, e_bulk, widths["bulk"]),
        (edge_h, e_edge, widths["edge"]),
        (corner_h, e_corner, widths["corner"]),
    ):
        lorentz = 1.0 / (1.0 + ((energy - centre[..., None]) / (width / 2)) ** 2)
        intensity = intensity + height[..., None] * lorentz
    spectra = rng.poisson(intensity).astype(np.float32) if noise else intensity.astype(np.float32)

    support = 0.05 + 0.01 * ndimage.gaussian_filter(rng.normal(size=(size, size)), 2)
    image = ndimage.gaussian_filter(thickness, 0.6) + support
    image = (image + rng.normal(0, 0.01, size=image.shape)).astype(np.float32)

    truth = {
        "particle_mask": inside.astype(np.float32),
        "thickness": thickness.astype(np.float32),
        "bulk_height": bulk_h.astype(np.float32),
        "edge_height": edge_h.astype(np.float32),
        "corner_height": corner_h.astype(np.float32),
        "bulk_energy": e_bulk.astype(np.float32),
        "edge_energy": e_edge.astype(np.float32),
        "corner_energy": e_corner.astype(np.float32),
        "distance_to_border_px": d_border.astype(np.float32),
        "distance_to_corner_px": d_corner.astype(np.float32),
    }
    return Dataset(
        name="builtin:plasmonic",
        modality="eels",
        image=image,
        spectra=spectra,
        energy=energy,
        pixel_size_nm=PIXEL_NM,
        truth=truth,
        default_exposure=0.01,
        meta={
            "seed": seed,
            "particles": [(kind, verts.tolist()) for kind, verts, _ in particles],
            "mode_widths_eV": widths,
            "zlp_sigma_eV": zlp_sigma,
        },
    )

"""PNG previews of a converted dataset: a contact sheet of frames and the state/action curves."""
import io

import numpy as np

__all__ = ["render_preview"]

_MAX_EPISODES = 12  # rows of the contact sheet (evenly chosen when there are more episodes)
_FRAMES_PER_EPISODE = 6
_MAX_CURVES = 12  # element curves per feature panel


def _png(fig):
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def render_preview(episodes, names):
    """episodes: [(label, BagEpisode)]; names: feature key -> element names. -> (frames png, curves png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [episodes[i] for i in np.unique(np.linspace(0, len(episodes) - 1, min(len(episodes), _MAX_EPISODES)).astype(int))]
    cameras = list(shown[0][1].frames) if shown else []
    cols = max(1, len(cameras) * _FRAMES_PER_EPISODE)
    fig, axes = plt.subplots(len(shown), cols, figsize=(1.6 * cols, 1.6 * len(shown) + 0.4), squeeze=False)
    for r, (label, ep) in enumerate(shown):
        for a in axes[r]:
            a.axis("off")
        for c, cam in enumerate(cameras):
            frames = ep.frames[cam]
            for j, t in enumerate(np.linspace(0, len(frames) - 1, _FRAMES_PER_EPISODE).astype(int)):
                ax = axes[r][c * _FRAMES_PER_EPISODE + j]
                ax.imshow(frames[t])
                ax.set_title(f"{label} {cam} t={t}" if j == 0 else f"t={t}", fontsize=6)
        if not cameras:
            axes[r][0].text(0, 0.5, f"{label}: no cameras", fontsize=8)
        axes[r][0].text(0, -0.1, ep.task[:40], fontsize=6, transform=axes[r][0].transAxes, va="top")
    fig.suptitle(f"{len(episodes)} episode(s), {len(shown)} shown", fontsize=9)
    frames_png = _png(fig)

    keys = list(names)
    fig, axes = plt.subplots(len(keys), 1, figsize=(10, 2.4 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        values = np.concatenate([ep.arrays[key] for _, ep in episodes])
        bounds = np.cumsum([len(ep.arrays[key]) for _, ep in episodes])[:-1]
        for d in range(min(values.shape[1], _MAX_CURVES)):
            ax.plot(values[:, d], lw=0.8, label=names[key][d])
        for b in bounds:
            ax.axvline(b, color="k", lw=0.4, alpha=0.4)
        ax.set_title(key + (f" (first {_MAX_CURVES} of {values.shape[1]})" if values.shape[1] > _MAX_CURVES else ""),
                     fontsize=9)
        ax.set_xlabel("frame (all episodes, lines = episode starts)", fontsize=7)
        ax.legend(fontsize=6, ncol=4, loc="upper right")
    fig.tight_layout()
    return frames_png, _png(fig)

"""PNG previews of a converted dataset: a contact sheet of frames and the state/action curves."""
import io
from dataclasses import dataclass

import numpy as np

__all__ = ['PreviewEpisode', 'preview_episodes', 'render_preview']

_MAX_EPISODES = 12  # rows of the contact sheet (evenly chosen when there are more episodes)
_FRAMES_PER_EPISODE = 6
_MAX_CURVES = 12  # element curves per feature panel
_THUMB = 112  # contact sheet thumbnail size (pixels)


@dataclass
class PreviewEpisode:
    """What the previews need of one episode: its arrays, and a few frames if the contact sheet shows it."""

    label: str
    task: str
    frames: dict  # camera -> [(frame index, uint8 (H, W, 3))]; None for episodes the sheet leaves out
    arrays: dict  # feature key -> float32 (T, D)


def preview_episodes(datasets):
    """Return PreviewEpisodes of every episode of the datasets (LeRobotDatasets, in order), numbered in that order.

    Only the episodes the contact sheet shows (at most a dozen, evenly chosen) have frames read, and
    of those only the frames shown, so this costs the same for a large dataset as for a small one
    (but for the arrays, which the curves plot in full).
    """
    episodes = [(ds, ep) for ds in datasets for ep in range(ds.num_episodes)]
    shown = set(np.linspace(0, len(episodes) - 1, min(len(episodes), _MAX_EPISODES)).astype(int).tolist())
    previews = []
    for number, (ds, ep) in enumerate(episodes):
        frames = None
        if number in shown:
            picks = np.linspace(0, ds.episode_lengths[ep] - 1, _FRAMES_PER_EPISODE).astype(int)
            frames = {cam: list(zip(picks.tolist(), ds.frames_at(ep, cam, picks))) for cam in ds.camera_names}
        previews.append(PreviewEpisode(f'ep {number}', ds.task(ep), frames,
                                       {key: ds.array(ep, key) for key in ds.array_keys}))
    return previews


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=80, pil_kwargs={'compress_level': 1})  # Pillow's 6: ~15% slower
    return buf.getvalue()


def _contact_sheet(shown, total):
    """Rows = episodes, columns = evenly spaced frames of each camera, with labels (PIL, fast)."""
    from PIL import Image, ImageDraw

    thumbs = []
    for ep in shown:
        row = []
        for cam, picks in ep.frames.items():
            for t, frame in picks:
                img = Image.fromarray(frame)
                img.thumbnail((_THUMB, _THUMB))
                row.append((f'{cam} t={t}', img))
        thumbs.append((f'{ep.label}: {ep.task}'[:80], row))
    label_h, pad = 14, 4
    cols = max([len(r) for _, r in thumbs] + [1])
    height = label_h + max([img.height for _, r in thumbs for _, img in r] + [0]) + label_h
    sheet = Image.new('RGB', (max(cols * (_THUMB + pad), 320), label_h + len(thumbs) * (height + pad)), 'white')
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 1), f'{total} episode(s), {len(shown)} shown', fill='black')
    for r, (title, row) in enumerate(thumbs):
        y = label_h + r * (height + pad)
        draw.text((pad, y), title, fill='black')
        for c, (caption, img) in enumerate(row):
            x = c * (_THUMB + pad)
            sheet.paste(img, (x, y + label_h))
            draw.text((x, y + label_h + img.height + 1), caption, fill='black')
    buf = io.BytesIO()
    sheet.save(buf, format='PNG')
    return buf.getvalue()


def render_preview(episodes, names):
    """Return (frames png, curves png) of [PreviewEpisode] (from preview_episodes); names: key -> element names."""
    from matplotlib.figure import Figure  # not pyplot: no backend to choose, no global figure list

    frames_png = _contact_sheet([ep for ep in episodes if ep.frames is not None], len(episodes))

    keys = list(names)
    fig = Figure(figsize=(10, 2.4 * len(keys)))
    axes = fig.subplots(len(keys), 1, squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        values = np.concatenate([ep.arrays[key] for ep in episodes])
        bounds = np.cumsum([len(ep.arrays[key]) for ep in episodes])[:-1]
        for d in range(min(values.shape[1], _MAX_CURVES)):
            ax.plot(values[:, d], lw=0.8, label=names[key][d])
        for b in bounds:
            ax.axvline(b, color='k', lw=0.4, alpha=0.4)
        ax.set_title(key + (f' (first {_MAX_CURVES} of {values.shape[1]})' if values.shape[1] > _MAX_CURVES else ''),
                     fontsize=9)
        ax.set_xlabel('frame (all episodes, lines = episode starts)', fontsize=7)
        ax.legend(fontsize=6, ncol=4, loc='upper right')
    fig.subplots_adjust(left=0.06, right=0.98, top=1 - 0.35 / fig.get_figheight(), bottom=0.5 / fig.get_figheight(),
                        hspace=0.55)  # fixed margins: tight_layout costs more than the plot itself
    return frames_png, _png(fig)

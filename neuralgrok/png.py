"""Figures as 256-colour palette PNGs: the same picture in about a third of matplotlib's bytes.

A report's figures are flat colours, their blends and anti-aliased edges: Pillow's
maximum-coverage palette of 256 colours keeps every pixel within a few levels of the
original (at most 21 of 255 on the committed figures). A figure that a palette would
change by more than ``MAX_ERROR`` in any channel, or that has transparency, is kept as it is.
"""
from __future__ import annotations

import io

MAX_ERROR = 24  # the largest change of a channel (0-255) a palette may make to any pixel
COLOURS = 256


def palette_png(data: bytes) -> bytes | None:
    """``data`` (a PNG file) as a palette PNG with the same size, resolution and text; None to keep it as it is.

    None when it is a palette or grey image already, has transparency, or would lose more
    than ``MAX_ERROR`` in a channel; ``ValueError`` when it is not a PNG file.
    """
    from PIL import Image, ImageChops, PngImagePlugin, UnidentifiedImageError
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"not a readable PNG file ({e})") from None
    if image.format != "PNG":
        raise ValueError(f"not a PNG file ({image.format})")
    if image.mode not in ("RGB", "RGBA"):
        return None  # palette, grey or 16-bit images: nothing to gain, or not a figure
    if image.mode == "RGBA" and image.getchannel("A").getextrema()[0] < 255:
        return None  # transparency a palette would have to keep too
    rgb = image.convert("RGB")
    quantized = rgb.quantize(COLOURS, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE)
    error = max(high for _, high in ImageChops.difference(rgb, quantized.convert("RGB")).getextrema())
    if error > MAX_ERROR:
        return None
    text = PngImagePlugin.PngInfo()
    for key, value in getattr(image, "text", {}).items():
        text.add_text(key, value)
    out = io.BytesIO()
    quantized.save(out, "PNG", optimize=True, dpi=image.info.get("dpi"), pnginfo=text)
    return out.getvalue()

"""``oculi generate "prompt" -o out.png``: images from a configured generator (a ``diffusers`` model)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from oculi.cli.common import CONFIG_HELP, console, err_console, get_engine, handle_errors, print_json, shown, use_model_options
from oculi.core.errors import InputError

IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


@handle_errors
def generate(
    prompt: str = typer.Argument(..., help='What to draw, e.g. "a red bicycle against a brick wall".'),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the image (.png, .jpg, .webp)."),
    image: Optional[Path] = typer.Option(None, "--image", help="A start image: image-to-image (see --strength)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, max=500, help="Denoising steps (default: the model's)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="The same seed and options make the same image (default: random, reported)."),
    width: Optional[int] = typer.Option(None, "--width", help="Width in pixels (a multiple of 8)."),
    height: Optional[int] = typer.Option(None, "--height", help="Height in pixels (a multiple of 8)."),
    strength: Optional[float] = typer.Option(None, "--strength", min=0.01, max=1.0, help="With --image: 0 keeps the image, 1 ignores it."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="With --image: a PNG the size of the image; its fully "
                                        "transparent pixels (or white, without transparency) are what to change."),
    model: Optional[str] = typer.Option(None, "--model", help="A configured model that generates images (default: [tasks] generate)."),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: {prompt, model, seed, steps, images: [{path, width, height}]}."),
) -> None:
    """Generate an image from a prompt with a configured generator. oculi has no built-in one:
    configure a diffusers pipeline folder in oculi.toml (docs/BACKENDS.md)."""
    fmt = IMAGE_SUFFIXES.get(output.suffix.lower())
    if fmt is None:
        raise InputError(f"{output}: the output must end in one of {', '.join(IMAGE_SUFFIXES)}")
    if output.exists() and not overwrite:
        raise InputError(f"{output} exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise InputError(f"{output.parent} is not a folder")
    if strength is not None and image is None:
        raise InputError("--strength needs --image (image-to-image)")
    if mask is not None and image is None:
        raise InputError("--mask needs --image (the image the mask marks up)")
    use_model_options(model, config, "generate_image")
    eng = get_engine()
    gen_model = eng.generator(model)  # says plainly when none is configured, before any work
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("[bold]generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err_console, transient=True, disable=not err_console.is_terminal)
    task = bar.add_task("generating", total=None)
    with bar:
        res = eng.generate(prompt, image=image, steps=steps, seed=seed, width=width, height=height, strength=strength,
                           mask=mask, model=gen_model.name, progress=lambda i, n: bar.update(task, completed=i, total=n))
    paths = []
    for i, im in enumerate(res.images):
        p = output if i == 0 else output.with_name(f"{output.stem}-{i + 1}{output.suffix}")
        tmp = p.with_name(f".{p.name}.part")
        im.convert("RGB").save(tmp, format=fmt)
        tmp.replace(p)  # never a half-written image under the asked-for name
        paths.append(str(p))
    from dataclasses import replace

    res = replace(res, paths=tuple(paths))
    if as_json:
        print_json(res.to_dict())
        return
    for p, im in zip(paths, res.images):
        console.print(f"[bold]{shown(p)}[/]: {im.width}x{im.height}, {shown(res.model)}, seed {res.seed}"
                      + (f", {res.steps} steps" if res.steps else ""), highlight=False)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)

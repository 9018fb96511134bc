"""``wangp new``: start a finetune definition from an architecture's settings."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from wangp_cli.cli._options import Target, TargetOption
from wangp_cli.cli._output import emit, handle_errors, log, open_home, warn


@handle_errors
def new_command(
    ctx: typer.Context,
    model_id: Annotated[str, typer.Argument(help="Id of the new definition (its file name in finetunes/).",
                                            show_default=False)],
    architecture: Annotated[str, typer.Option("--architecture", help="Base architecture id (t2v, i2v, vace_14B, "
                                                                     "hunyuan, ...).", show_default=False)],
    name: Annotated[str, typer.Option("--name", help="Display name.", show_default=False)],
    url: Annotated[List[str], typer.Option("--url", help="Checkpoint URL or local path (repeat for each "
                                                         "variant).", show_default=False)],
    description: Annotated[str, typer.Option(help="Text shown above the generator (default: the name).")] = "",
    module: Annotated[Optional[List[str]], typer.Option("--module", help="Module id to merge (default: the "
                                                        "architecture's, e.g. vace_14B for vace_14B).",
                                                        show_default=False)] = None,
    preload_url: Annotated[Optional[List[str]], typer.Option("--preload-url", help="Extra file always fetched.",
                                                             show_default=False)] = None,
    auto_quantize: Annotated[bool, typer.Option("--auto-quantize", help="Quantize 16-bit weights in memory when "
                                                                        "int8 is wanted.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Accept an id that replaces a base architecture or a "
                                                        "defaults/ definition (an existing file is never "
                                                        "replaced).")] = False,
    target: TargetOption = Target.v12,
) -> None:
    """Write finetunes/ID.json: the architecture's settings plus a model subtree. Never overwrites.

    Prints the path, then the new file's warnings (as `wangp validate` would). Example: wangp new t2v_myft
    --architecture t2v --name "My finetune" --url https://huggingface.co/me/ft/resolve/main/myft_bf16.safetensors
    """
    from wangp_cli.core.authoring import new_definition

    path, _, warnings = new_definition(open_home(ctx), model_id, architecture=architecture, name=name, urls=url,
                                       description=description, modules=module or [],
                                       preload_urls=preload_url or [], auto_quantize=auto_quantize,
                                       target=target.value, force=force)
    emit(str(path))
    for diagnostic in warnings:
        warn(str(diagnostic))
        if diagnostic.hint:
            log(ctx, f"  help: {diagnostic.hint}")


def register(app: typer.Typer) -> None:
    app.command("new")(new_command)

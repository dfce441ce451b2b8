"""``microvlm demo``: the offline demo, and the seed's quick-start script."""

from __future__ import annotations

from pathlib import Path

import click

from microvlm.cli.infer_inputs import max_new_tokens_option
from microvlm.errors import MicroVLMError
from microvlm.plugins.manager import Plugins

DEMO_RECIPE = "recipes/demo.toml"
DEMO_CHECKPOINT = "output/demo/stage4/checkpoint_final"


@click.command("demo")
@click.option("--image", help="Answer about this image with the demo's model (the seed's quick_start.py).")
@click.option("--prompt", default="Describe this image.", show_default=True, help="Question or instruction.")
@click.option("--checkpoint", default=DEMO_CHECKPOINT, show_default=True, help="Model to answer with.")
@click.option("--recipe", default=DEMO_RECIPE, show_default=True, help="The demo recipe to run.")
@max_new_tokens_option(default=64)
@click.pass_obj
def demo_command(
    plugins: Plugins, image: str | None, prompt: str, checkpoint: str, recipe: str, max_new_tokens: int
) -> None:
    """Run the offline demo, or ask its model about an image.

    \b
      microvlm demo                                   train + evaluate (= microvlm run recipes/demo.toml)
      microvlm demo --image shapes.jpg --prompt "How many shapes are there?"
    """
    if image is not None:
        from microvlm.cli.infer_inputs import check_text, read_image
        from microvlm.cli.model_cmds import Answerer, load_model

        if not Path(checkpoint).is_dir():
            raise MicroVLMError(f"{checkpoint}: no demo model yet; train it first with: microvlm demo")
        check_text(prompt, "--prompt")
        picture = read_image(image)
        answerer = Answerer(load_model(checkpoint, plugins), {"max_new_tokens": max_new_tokens})
        answerer.answer([picture], [prompt], stream=True)
        return
    from microvlm.cli.recipe_cmd import dispatch
    from microvlm.recipes.load import load_recipe

    if not Path(recipe).is_file():
        raise MicroVLMError(f"{recipe}: not found; run microvlm demo from the repository root")
    dispatch(load_recipe(recipe, plugins), plugins)

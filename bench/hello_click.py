"""A Click hello-world command: the yardstick `bench/startup.py` compares `kitty-auth auth status` with.

Run as `.venv/bin/python bench/hello_click.py` (the venv interpreter running one small file that
imports Click), which is what the `kitty-auth` console-script wrapper is too.
"""

import click


@click.command()
def hello() -> None:
    """Say hello."""
    click.echo("Hello, world!")


if __name__ == "__main__":
    hello()

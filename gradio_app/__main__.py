"""`python -m gradio_app`: serve the web app (the same options as `vfi app`)."""
import argparse
import sys

from gradio_app.command import add_app_options, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradio_app", description="Serve the vfi web app.")
    add_app_options(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

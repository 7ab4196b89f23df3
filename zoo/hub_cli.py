"""`zoo push MODEL_DIR --repo org/name`: upload a model directory to the Hugging Face Hub."""

from __future__ import annotations

import argparse

from zoo.cli_errors import fail
from zoo.modelfiles import ALL_FILES


def push_main(argv: list[str]) -> int:
    """`zoo push`: upload a model directory (config, weights, ONNX, eval.json, card)."""
    parser = argparse.ArgumentParser(
        prog="zoo push",
        description="Upload a model directory to a Hugging Face Hub repo (created if needed). "
        f"Only the model-directory files ({', '.join(ALL_FILES)}) go up, in one commit. "
        "A missing or `zoo card`-generated README.md goes up as a card that loads from the "
        "repo; the local directory is not changed. HF_ENDPOINT selects the server.",
    )
    parser.add_argument("model_dir", help="model directory written by `zoo export`")
    parser.add_argument(
        "--repo",
        required=True,
        help="Hub repo id, e.g. cpg-zoo/lraspp_mbv3_... (a bare name goes to your account)",
    )
    parser.add_argument("--revision", help="branch to commit to (created if missing; default main)")
    parser.add_argument("--tag", help="tag the new commit, e.g. v1.0")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or `hf auth login`)")
    parser.add_argument("-m", "--message", help="commit message")
    args = parser.parse_args(argv)

    from huggingface_hub.errors import HfHubHTTPError

    from zoo.hub import full_repo_id, push_model_dir

    try:
        args.repo = full_repo_id(args.repo, args.token)  # `name` -> `user/name`, for the links
        sha = push_model_dir(
            args.model_dir,
            args.repo,
            revision=args.revision,
            tag=args.tag,
            private=args.private,
            token=args.token,
            commit_message=args.message,
        )
    except ValueError as error:
        return fail("zoo push", error, code=2)
    except ConnectionError as error:
        return fail("zoo push", error)
    except (HfHubHTTPError, OSError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return fail("zoo push", f"upload to {args.repo} failed: {first_line}")
    from huggingface_hub import constants

    print(f"pushed {args.model_dir} to {args.repo}@{args.revision or 'main'}: commit {sha}")
    if args.tag:
        print(f"tagged {args.tag}")
    print(f"pin it with: zoo.load('hf-hub:{args.repo}@{sha}')")
    print(f"{constants.ENDPOINT}/{args.repo}/tree/{sha}")
    return 0

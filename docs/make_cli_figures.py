"""Generates the command line page's pictures of tagging and question
answering: runs each task on its bundled data with the defaults, as a user
would, and copies the pictures the runs write into `docs/img/`:

- `cli_entity_scores.png`: `kfinetune train --task tag` (full fine-tuning
  of MiniLM on the tweets' case-restoration spans, 4 epochs);
- `cli_qa_scores.png`: `kfinetune train --task qa` (full fine-tuning on
  questions about the tweets, 3 epochs).

About 15 minutes on two CPU cores; the runs stay in `runs/docs-tag` and
`runs/docs-qa`.

python docs/make_cli_figures.py
"""

import pathlib
import shutil

from kfinetune import cli

OUT = pathlib.Path(__file__).parent / "img"
RUNS = (
    ("tag", "entity_scores.png"),
    ("qa", "qa_scores.png"),
)


def main():
    for task, picture in RUNS:
        run = pathlib.Path("runs") / f"docs-{task}"
        cli.main(["train", "--task", task, "--output-dir", str(run)])
        shutil.copyfile(run / picture, OUT / f"cli_{picture}")


if __name__ == "__main__":
    main()

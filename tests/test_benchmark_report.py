"""The benchmark report renders what the quality benchmarks write."""

from benchmarks import harness
from benchmarks import report


def _document(name, results, **extra):
    machine = {
        "date_utc": "2026-12-01T00:00:00+00:00",
        "load_average_1m": 0.5,
        "cpu": "test CPU",
        "usable_cores": 2,
        "logical_cores": 2,
        "ram_gib": 24,
        "platform": "Linux",
        "python": "3.11",
        "tensorflow": "2.21",
        "keras": "3.15",
        "keras_hub": "0.32",
        "numpy": "2.4",
    }
    return {
        "benchmark": name,
        "machine": machine,
        "parameters": {"seeds": [0, 1, 2], "limit": None},
        "results": results,
        **extra,
    }


def test_mean_std_cells():
    assert harness.format_mean_std([0.8, 0.9]) == "0.850 ± 0.071"
    assert harness.format_mean_std([1.5], digits=1) == "1.5 ± 0.0"


def test_description_stops_at_the_usage_line():
    docstring = """Title line.

    More about the task.

        python -m benchmarks.x [--seeds 0]
    """
    text = harness.description(docstring.replace("\n    ", "\n"))
    assert text == "Title line.\n\nMore about the task."


def test_quality_rows_render_with_notes_below_the_table():
    rows = {
        "full_crf": {
            "entity F1": "0.700 ± 0.010",
            "note": "every weight trains",
            "runs": [{"seed": 0, "entity_f1": 0.7}],
        }
    }
    page = report.build_page(
        [_document("tagging", rows, description="What is measured.")]
    )
    section = page.split(f"## {report.TITLES['tagging']}")[1]
    assert "What is measured." in section
    table_header = next(
        line for line in section.splitlines() if line.startswith("| name")
    )
    assert "entity F1" in table_header
    # Notes and per-seed runs are not table columns.
    assert "note" not in table_header and "runs" not in table_header
    assert "- `full_crf`: every weight trains." in section

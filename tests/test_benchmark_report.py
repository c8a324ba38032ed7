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


def _table_row(text, name):
    return next(
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith(f"| {name} ")
    )


def test_step_time_rows_compare_savings_with_their_control_per_round():
    def variant(times):
        return {
            "trainable_params": 10,
            "total_params": 10,
            "median_s": 0.1,
            "ratio_median": 1.0,
            "ratio_q25": 1.0,
            "ratio_q75": 1.0,
            "ratio_ci95": [1.0, 1.0],
            "times_s": times,
        }

    payload = {
        "parameters": {},
        "baseline": "full",
        "results": {
            "full": variant([1.0, 1.0, 1.0, 1.0]),
            "lora": variant([0.5, 0.4, 0.5, 0.4]),
            # Per round: 2.0, 1.5, 1.6, 1.5 of lora.
            "lora_remat": variant([1.0, 0.6, 0.8, 0.6]),
        },
    }
    text = report.render_results("step_time", payload)
    assert _table_row(text, "lora_remat")[-1] == (
        "1.55 of lora per round (IQR 1.50–1.70)"
    )
    assert _table_row(text, "full")[-1] == ""


def test_memory_rows_give_tensor_and_process_ratios_to_the_control():
    def variant(variables, tensors, process):
        return {
            "trainable_params": 10,
            "total_params": 10,
            "variable_mib": variables,
            "step_seconds": 1.0,
            "tensor_baseline_mib": variables,
            "tensor_increase_mib": tensors,
            "baseline_rss_mib": 1000.0,
            "peak_rss_mib": 1000.0 + process,
            "peak_increase_mib": process,
            "tensor_increase_ratio": 1.0,
            "peak_increase_ratio": 1.0,
            "peak_ratio": 1.0,
        }

    payload = {
        "parameters": {},
        "baseline": "full",
        "results": {
            "full": variant(80.0, 1000.0, 1500.0),
            "full_remat": variant(80.0, 600.0, 1200.0),
        },
    }
    text = report.render_results("memory", payload)
    header = _table_row(text, "variant")
    row = dict(zip(header, _table_row(text, "full_remat"), strict=True))
    assert row["control"] == "full"
    assert row["variables ÷ control"] == "1.00"
    assert row["tensor increase ÷ control"] == "0.60"
    assert row["process increase ÷ control"] == "0.80"


def _timed(times):
    return {
        "trainable_params": 10,
        "total_params": 10,
        "median_s": 0.1,
        "ratio_median": 1.0,
        "ratio_q25": 1.0,
        "ratio_q75": 1.0,
        "ratio_ci95": [1.0, 1.0],
        "times_s": times,
    }


def test_generator_sections_name_their_command_and_mark_smoke_runs():
    parameters = {"batch_size": 2, "warmup": 1, "repeats": 2, "smoke": True}
    documents = [
        _document(
            "generators_step_time",
            {
                "full": _timed([1.0, 1.0]),
                "keras_lora": _timed([0.8, 0.8]),
                "lora": _timed([0.64, 0.64]),
            },
            command="python -m benchmarks.generators",
            parameters=parameters,
            baseline="full",
        ),
        _document(
            "generators_generate",
            {"base": _timed([2.0, 2.0]), "lora_merged": _timed([2.0, 2.0])},
            command="python -m benchmarks.generators",
            parameters=parameters,
            baseline="base",
        ),
    ]
    page = report.build_page(documents)
    training = page.split(f"## {report.TITLES['generators_step_time']}")[1]
    training, generation = training.split(
        f"## {report.TITLES['generators_generate']}"
    )
    for section in (training, generation):
        assert "`python -m benchmarks.generators`, run" in section
        # One warning: a smoke run's few rounds need no second one.
        assert section.count('!!! warning "Not a full run"') == 1
        assert "A smoke run" in section
    assert "- `lora` ÷ `keras_lora`, per round: median 0.80" in training
    assert "median call (ms)" in _table_row(generation, "variant")
    assert _table_row(generation, "lora_merged")[-1] == "target ≤ 1.02"

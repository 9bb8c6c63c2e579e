"""benchmarks/study_fgsm.py: a study resumed across invocations names the code of each run."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from study_fgsm import code_versions  # noqa: E402

from noisyrnn.provenance import describe  # noqa: E402


def test_each_run_is_credited_to_the_code_that_studied_it():
    old, new = ({"version": "0.1.0", "commit": "a" * 40, "dirty": False},
                {"version": "0.1.0", "commit": "b" * 40, "dirty": False})
    results = {"code": new, "runs": {"lipschitz": {"code": old}, "nrnn": {"code": new},
                                     "nrnn_high": {"code": old}, "exprnn": {}}}
    text = code_versions(results)
    assert text == (f"{describe(old)}: lipschitz, nrnn_high; {describe(new)}: nrnn; "
                    "code not recorded per run: exprnn")
    assert describe(old) != describe(new)
    assert code_versions({"code": new, "runs": {}}) == describe(new)

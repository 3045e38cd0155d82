"""Run the FinOps Foundation's FOCUS validator (PyPI ``focus-validator``) on an export and read its JUnit report.

The validator lives in its own virtualenv (``scripts/focus-venv.sh``, Python 3.12, numpy < 2). It runs offline
(``--block-download``) with its bundled FOCUS 1.2 rules, from a scratch working directory holding the
``focus_validator/rules/currency_codes.csv`` it opens relative to the working directory.

Reading the report: the validator lists both branches of an OR rule as separate test cases, so the branch that
does not hold fails even when the rule passes (e.g. InvoiceId must be null when not invoiced *or* not null when
invoiced). A failed case counts only when it is not a branch of an OR rule whose own case passed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a token meter supports, so the rules for these features run instead of being skipped.
CRITERIA = (
    "USAGE_MEASUREMENT_SUPPORTED",
    "UNIT_PRICING_SUPPORTED",
    "PUBLIC_PRICE_LIST_SUPPORTED",
    "NEGOTIATED_PRICING_SUPPORTED",
    "SUB_ACCOUNT_SUPPORTED",
    "TAGGING_SUPPORTED",
    "ACCOUNT_NAMING_SUPPORTED",
)


def venv() -> Path:
    """The validator's virtualenv ($FOCUS_VENV or .venv-focus)."""
    return Path(os.environ.get("FOCUS_VENV", ROOT / ".venv-focus"))


def available() -> bool:
    """True when the validator is installed."""
    return (venv() / "bin" / "focus-validator").exists()


@dataclass
class Report:
    """What the validator said: cases run, passed, skipped, failed (after the OR-branch reading)."""

    tests: int = 0
    passed: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    or_branches_ignored: list[str] = field(default_factory=list)
    output: str = ""


def _package_dir() -> Path:
    out = subprocess.run(
        [
            str(venv() / "bin" / "python"),
            "-c",
            "import focus_validator, os; print(os.path.dirname(focus_validator.__file__))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return Path(out.stdout.strip())


def _or_parents(rules_dir: Path) -> dict[str, str]:
    """Branch rule id -> the OR rule that has it as one of its alternatives (1.2 model)."""
    model = json.loads(next(rules_dir.glob("model-1.2*.json")).read_text())
    parents: dict[str, str] = {}
    for rule_id, rule in model["ModelRules"].items():
        req = rule.get("ValidationCriteria", {}).get("Requirement", {})
        if req.get("CheckFunction") == "OR":
            for item in req.get("Items", []):
                if item.get("CheckFunction") == "CheckModelRule":
                    parents[item["ModelRuleId"]] = rule_id
    return parents


def validate(data: Path, workdir: Path, *, version: str = "1.2") -> Report:
    """Validate ``data`` (.csv or .parquet) against FOCUS ``version``."""
    rules_dir = _package_dir() / "rules"
    (workdir / "focus_validator" / "rules").mkdir(parents=True, exist_ok=True)
    shutil.copy(rules_dir / "currency_codes.csv", workdir / "focus_validator" / "rules" / "currency_codes.csv")
    junit = workdir / "focus-junit.xml"
    proc = subprocess.run(
        [
            str(venv() / "bin" / "focus-validator"),
            "--data-file",
            str(data),
            "--validate-version",
            version,
            "--block-download",
            "--applicability-criteria",
            ",".join(CRITERIA),
            "--output-type",
            "unittest",
            "--output-destination",
            str(junit),
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = Report(output=proc.stdout + proc.stderr)
    if not junit.exists():
        report.failed.append(("validator", f"no report (exit {proc.returncode}): {report.output[-2000:]}"))
        return report
    cases: dict[str, tuple[str, str]] = {}  # rule id -> (status, message)
    for tc in ET.parse(junit).getroot().iter("testcase"):
        rule_id = (tc.get("name") or "").split(" :: ")[0]
        failure = tc.find("failure")
        if failure is None:
            failure = tc.find("error")
        if failure is not None:
            cases[rule_id] = ("failed", f"{failure.get('message')}: {(failure.text or '').strip()[:300]}")
        elif tc.find("skipped") is not None:
            cases[rule_id] = ("skipped", "")
        else:
            cases[rule_id] = ("passed", "")
    parents = _or_parents(rules_dir)
    report.tests = len(cases)
    for rule_id, (status, message) in sorted(cases.items()):
        if status == "passed":
            report.passed += 1
        elif status == "skipped":
            report.skipped += 1
        elif rule_id in parents and cases.get(parents[rule_id], ("",))[0] == "passed":
            report.or_branches_ignored.append(rule_id)
        else:
            report.failed.append((rule_id, message))
    return report

from soak.verdict import Attempt, judge, outcome_problem, summary

FILES = [("f0.bin", 3, "a" * 64), ("f1.bin", 5, "b" * 64)]


def accepted(upload_id: str = "u1") -> Attempt:
    return Attempt("good", list(FILES), 202, upload_id)


def done(files=FILES) -> dict:
    return {"status": "done", "result": {"files": [
        {"name": n, "size": s, "sha256": d} for n, s, d in files], "verified": True}}


def test_done_with_the_true_digests_is_no_loss() -> None:
    assert outcome_problem(accepted(), done()) is None


def test_done_with_another_digest_is_a_loss() -> None:
    wrong = [FILES[0], ("f1.bin", 5, "c" * 64)]
    assert "other files" in (outcome_problem(accepted(), done(wrong)) or "")


def test_a_missing_file_is_a_loss() -> None:
    assert outcome_problem(accepted(), done(FILES[:1])) is not None


def test_gone_or_stuck_is_a_loss() -> None:
    assert outcome_problem(accepted(), None) == "gone (404)"
    assert outcome_problem(accepted(), {"status": "queued"}) == "ended queued"
    assert outcome_problem(accepted(), {"status": "processing"}) == "ended processing"


def test_failed_counts_as_lost_when_its_reason_says_the_work_was_lost() -> None:
    lost = {"status": "failed", "error": "message lost: gave up after 3 requeues"}
    assert outcome_problem(accepted(), lost) is not None
    assert outcome_problem(accepted(), {"status": "failed", "error": None}) is not None
    refused = {"status": "failed", "error": "the worker ran out of disk"}
    assert outcome_problem(accepted(), refused) is None


def test_judge_counts_refusals_losses_duplicates_and_leaks() -> None:
    attempts = [accepted("u1"), accepted("u2"), Attempt("bad-purpose", [], 400, "u3"),
                Attempt("cut", [])]
    finals = {"u1": done(), "u2": None}
    seen = {"u1": {"x"}, "u2": {"x", "y"}}
    verdict = judge(attempts, finals, seen, ["trash u9.1"])
    assert (verdict.tried, verdict.accepted, verdict.refused, verdict.done) == (4, 2, 2, 1)
    assert verdict.lost == ["u2: gone (404)"]
    assert verdict.duplicates == ["u2: ['x', 'y']"]
    assert verdict.leaked == ["trash u9.1"]
    assert not verdict.ok


def test_a_clean_run_is_ok_and_its_summary_names_every_count() -> None:
    verdict = judge([accepted("u1")], {"u1": done()}, {"u1": {"x"}}, [])
    assert verdict.ok
    line = summary(verdict, {"kill:redis": 2, "stop:gc": 1}, seed=42)
    for part in ("seed=42", "tried=1", "accepted=1", "refused=0", "faults=3",
                 "kill:redis=2", "stop:gc=1", "lost=0", "leaked=0", "duplicates=0"):
        assert part in line

"""The HotpotQA task: the real shared file, the paper's splits, retrieval over each question's own
paragraphs or all of them pooled (bm25s), and training end to end on a user's own file."""
import json
import os
import re
import subprocess
import sys

import pytest

from workbench import Models, TrainConfig, Trainer, f1_score
from workbench.tasks.datasets import DatasetError, hotpotqa_path, load_hotpotqa
from workbench.errors import WorkbenchError
from workbench.tasks.pipelines import hotpotqa_rag, paragraphs_of, pooled_paragraphs
from workbench.records.results import open_run
from workbench.tasks import get_task
from workbench.testing import OpenAITestServer

from test_pipelines_train import appending_optimizer


@pytest.fixture(scope="module")
def hotpot():
    try:
        return load_hotpotqa(hotpotqa_path())
    except DatasetError as exc:
        pytest.skip(f"shared HotpotQA file not available ({exc})")


def record(qid, question, answer, paragraphs, supporting):
    return {"_id": qid, "question": question, "answer": answer, "type": "bridge", "level": "easy",
            "supporting_facts": [[t, 0] for t in supporting],
            "context": [[title, [sentences[0]] + [" " + s for s in sentences[1:]]] for title, sentences in paragraphs]}


# Two questions with their own paragraphs; "Ostervale" is the answer of the first, whose gold paragraph
# is found only after a second hop (the bridge entity), and appears in neither paragraph of the second.
OWN_FILE = [
    record("q1", "In which town was the founder of Bluefire Glassworks born?", "Ostervale",
           [("Bluefire Glassworks", ["Bluefire Glassworks is a glass maker.", "It was founded by Idris Vantorre."]),
            ("Idris Vantorre", ["Idris Vantorre was born in Ostervale.", "He made lamps."]),
            ("Harbourline Cordage", ["Harbourline Cordage makes rope."])],
           ["Bluefire Glassworks", "Idris Vantorre"]),
    record("q2", "What does the company founded by Mara Quell make?", "salt-water rope",
           [("Mara Quell", ["Mara Quell founded Harbourline Cordage."]),
            ("Harbourline Cordage", ["Harbourline Cordage makes salt-water rope."]),
            ("Idris Vantorre", ["Idris Vantorre was born in Kelmarsh."])],  # same title, other text
           ["Mara Quell", "Harbourline Cordage"]),
]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# -- the real file and the paper's protocol -----------------------------------------------------------

def test_shared_file_splits_as_in_the_paper(hotpot):
    assert len(hotpot) == 500 and len({e.id for e in hotpot}) == 500
    task = get_task("hotpotqa")
    splits = task.load(seed=0)
    train, val, test = splits
    assert (len(train), len(val), len(test)) == (100, 100, 200)
    ids = [e.id for part in splits for e in part]
    assert len(set(ids)) == 400
    assert [e.id for e in task.load(seed=0).test] == [e.id for e in test]  # seeded
    assert [e.id for e in task.load(seed=1).train] != [e.id for e in train]
    assert "hotpotqa/dev_distractor_500.jsonl (500 examples)" in splits.describe()
    assert "seed 0" in splits.describe()
    assert all(len(e.id) == 24 and e.input == {"question": e.input["question"]} for e in train)  # no leak
    assert task.eval_fn("the Ostervale", "Ostervale") == 1.0 and 0 < task.eval_fn("Ostervale town", "Ostervale") < 1


def test_own_paragraphs_retrieval_finds_gold_evidence(hotpot):
    """Searching with the question itself, BM25 over the question's own 10 paragraphs puts a supporting
    paragraph in the top 2 for nearly every question; pooled over ~5,000 paragraphs it is harder."""
    own, pooled = hotpotqa_rag(hotpot), hotpotqa_rag(hotpot, pooled=True)
    assert len(pooled.index.documents) == len(pooled_paragraphs(hotpot)) > 4000

    def recall(pipeline):
        hits = 0
        for e in hotpot:
            gold = {title for title, _ in e.meta["supporting_facts"]}
            found = pipeline.index_for(e.input["question"]).search(e.input["question"], 2)
            hits += bool(gold & {d["title"] for d in found})
        return hits / len(hotpot)
    own_recall, pooled_recall = recall(own), recall(pooled)
    assert own_recall > 0.9 and 0.7 < pooled_recall < own_recall
    first = hotpot[0]
    assert [d["title"] for d in own.index_for(first.input["question"]).documents] == \
        [title for title, _ in first.meta["context"]]


def test_paragraph_text_keeps_hotpotqa_sentence_spacing(tmp_path):
    [example, _] = load_hotpotqa(write_jsonl(tmp_path / "h.jsonl", OWN_FILE))
    docs = paragraphs_of(example)
    assert docs[0] == {"id": "q1/0", "title": "Bluefire Glassworks",
                       "text": "Bluefire Glassworks is a glass maker. It was founded by Idris Vantorre."}
    pooled = pooled_paragraphs(load_hotpotqa(tmp_path / "h.jsonl"))
    # "Harbourline Cordage" twice with different text: both kept; identical paragraphs would be kept once
    assert sorted(d["title"] for d in pooled) == ["Bluefire Glassworks", "Harbourline Cordage", "Harbourline Cordage",
                                                  "Idris Vantorre", "Idris Vantorre", "Mara Quell"]


def test_unknown_question_is_a_clear_error(tmp_path):
    pipeline = hotpotqa_rag(load_hotpotqa(write_jsonl(tmp_path / "h.jsonl", OWN_FILE)))
    with pytest.raises(WorkbenchError, match="no corpus for the question 'Who wrote Hamlet\\?'"):
        pipeline.index_for("Who wrote Hamlet?")
    with pytest.raises(WorkbenchError, match="not both"):
        type(pipeline)([{"id": "1", "title": "t", "text": "x"}], corpora={})


def test_hotpotqa_path_follows_the_shared_data_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SHARED_DATA", str(tmp_path))
    with pytest.raises(DatasetError, match="HotpotQA file not found: .*hotpotqa/dev_distractor_500.jsonl"):
        hotpotqa_path()
    (tmp_path / "hotpotqa").mkdir()
    write_jsonl(tmp_path / "hotpotqa" / "dev_distractor_500.jsonl", OWN_FILE)
    assert hotpotqa_path() == tmp_path / "hotpotqa" / "dev_distractor_500.jsonl"
    assert [e.id for e in get_task("hotpotqa").load(1, 1, 0, seed=0).pool] == ["q1", "q2"]


# -- training on a user's own file -------------------------------------------------------------------

PRECISE = "Use the passage that names the answer."


def scripted():
    """Query writer: the first hop searches the question, later hops the last name in the last passage
    found (the bridge entity). Answerer: the word after "born in" / "makes" in the passages when told to be precise,
    else the first passage's title. Backward asks for precision; the optimizer adds the sentence."""
    def task(messages):
        system, user = messages[0]["content"], messages[-1]["content"]
        if "Reply with the search query only" in system:
            found = re.search(r"Passages found so far:\n(.*)\n\nSearch query:", user, re.S).group(1)
            if found == "(none)":
                return re.search(r"Question: (.*)", user).group(1)
            return "Query: " + re.findall(r"[A-Z]\w+ [A-Z]\w+", found.splitlines()[-1])[-1]
        context = re.search(r"Passages:\n(.*)\n\nQuestion:", user, re.S).group(1)
        if PRECISE in system:
            match = re.search(r"born in (\w+)|makes ([\w-]+ rope)", context)
            return f"Answer: {match.group(1) or match.group(2)}" if match else "Answer: unknown"
        return "Answer: " + context.split(":")[0]

    def backward(messages):
        return "The answer named a passage title instead of the fact the question asks for."
    return Models.scripted(task, backward, appending_optimizer(PRECISE))


def test_hotpotqa_trains_on_a_users_file_with_own_paragraph_retrieval(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", OWN_FILE)
    task = get_task("hotpotqa")
    train = val = test = load_hotpotqa(path)  # two questions: every split, to see both answered
    pipeline = task.pipeline_from_examples(train)
    trainer = Trainer(pipeline, train, val, test, task.eval_fn, scripted(),
                      config=TrainConfig(max_steps=1, batch_size=2, max_failed=2, max_correct=0),
                      run_dir=tmp_path / "run", task="hotpotqa")
    summary = trainer.fit()
    assert summary.status == "completed"
    assert summary.baseline["val"] == 0.0 and summary.final["val"] == 1.0 and summary.final["test"] == 1.0
    run = open_run(trainer)
    final = run.samples[(run.samples.phase == "final")].set_index("sample_id")
    assert final.loc["q1", "prediction"] == "Ostervale" and final.loc["q2", "prediction"] == "salt-water rope"
    # each question searched only its own paragraphs: q2's "Idris Vantorre ... Kelmarsh" never reached q1
    graphs = [e.data["graph"] for e in run.events() if e.type == "forward" and e.data["graph"]]
    q1 = next(g for g in graphs if g["sample_id"] == "q1")
    retrieve = [n for n in q1["nodes"] if n["component"] == "retrieve"]
    assert [n["inputs"]["question"] for n in retrieve] == [OWN_FILE[0]["question"]] * 2
    assert any("Idris Vantorre: Idris Vantorre was born in Ostervale" in n["output"] for n in retrieve)
    assert not any("Kelmarsh" in n["output"] for n in retrieve)
    q2 = next(g for g in graphs if g["sample_id"] == "q2")
    assert [n["inputs"]["query"] for n in q2["nodes"] if n["component"] == "retrieve"][1] == "Harbourline Cordage"
    grads = run.gradients
    assert {"query.instruction", "answer.instruction"} <= set(grads.target)
    assert set(grads[grads.target == "query.instruction"].node_id) == {"query", "query#2"}


def test_task_pipeline_for_uses_the_file_the_splits_came_from(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", OWN_FILE)
    for name, pooled in (("hotpotqa", False), ("hotpotqa-pooled", True)):
        task = get_task(name)
        splits = task.load(1, 1, 0, seed=0, source=path)
        pipeline = task.pipeline_for(splits)
        if pooled:
            assert pipeline.corpora is None and len(pipeline.index.documents) == 6
            assert pipeline.index.search("Kelmarsh", 1)[0]["title"] == "Idris Vantorre"
        else:
            assert sorted(pipeline.corpora) == sorted(r["question"] for r in OWN_FILE)
        assert sorted(pipeline.named_parameters()) == ["answer.instruction", "answer.output_format",
                                                       "query.instruction"]


def respond(messages):
    """The scripted roles of `scripted()` behind one HTTP endpoint (for the CLI test)."""
    models = scripted()
    text = messages[-1]["content"]
    if "<CURRENT_VALUE>" in text:
        return models.optimizer.respond(messages)
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    if "Reply with the search query only" in system or "Passages:\n" in text:
        return models.task.respond(messages)
    return models.backward.respond(messages)


def test_workbench_train_task_hotpotqa_on_a_users_file(tmp_path):
    """`workbench train --task hotpotqa --source FILE`: the pipeline retrieves over that file's paragraphs."""
    write_jsonl(tmp_path / "mine.jsonl", OWN_FILE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "OPENAI_"))}
    env["WORKBENCH_CACHE_DIR"] = str(tmp_path / "cache")
    with OpenAITestServer(responder=respond) as server:
        proc = subprocess.run([sys.executable, "-m", "workbench", "train", "--task", "hotpotqa", "--source", "mine.jsonl",
                               "--train", "1", "--val", "1", "--test", "0", "--steps", "1", "--batch-size", "1",
                               "--base-url", server.base_url, "--model", "m", "--run-dir", "runs/h"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = open_run(tmp_path / "runs" / "h")
    assert run.config["task"] == "hotpotqa"
    retrieved = run.samples[run.samples.phase == "baseline"]
    assert len(retrieved) == 1 and retrieved.status.iloc[0] in ("ok", "failed")  # answered, not errored
    graph = next(e.data["graph"] for e in run.events() if e.type == "forward" and e.data["graph"])
    outputs = [n["output"] for n in graph["nodes"] if n["component"] == "retrieve"]
    assert outputs and all(o.split(":")[0] in {t for r in OWN_FILE for t, _ in r["context"]} for o in outputs)

"""The straightforward SQuAD v1.1 post-processing, a plain loop over the top start x end pairs of every feature as in
the transformers example (the top positions taken among the context's tokens): the reference the vectorized
utils_qa.postprocess_qa_predictions is checked (by test_utils_qa.py) and timed (by benchmarks/bench_postprocess.py)
against."""



def straightforward_postprocess(examples, features, predictions, n_best_size=20, max_answer_length=30):
    """The reference algorithm (v1.1): every pair of a feature's top start and end positions, one at a time.
    examples and features are dicts of lists."""
    all_start_logits, all_end_logits = predictions
    features_of_example = {}
    for i, example_id in enumerate(features["example_id"]):
        features_of_example.setdefault(example_id, []).append(i)
    all_offsets = features["offset_mapping"]
    answers = {}
    for example in (dict(zip(examples, values)) for values in zip(*examples.values())):
        candidates = []
        for f in features_of_example[example["id"]]:
            start_logits, end_logits, offsets = all_start_logits[f], all_end_logits[f], all_offsets[f]
            # the top positions among the context's tokens: only they can start or end an answer
            context = [p for p in range(min(len(offsets), len(start_logits))) if offsets[p] is not None]
            for start in sorted(context, key=lambda p: -start_logits[p])[:n_best_size]:
                for end in sorted(context, key=lambda p: -end_logits[p])[:n_best_size]:
                    if end < start or end - start + 1 > max_answer_length:
                        continue
                    candidates.append((start_logits[start] + end_logits[end], offsets[start][0], offsets[end][1]))
        if candidates:
            _, first, last = max(candidates, key=lambda c: c[0])  # max keeps the first of equal scores, like sorted
            answers[example["id"]] = example["context"][first:last]
        else:
            answers[example["id"]] = "empty"
    return answers

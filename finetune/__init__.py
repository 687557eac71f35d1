"""What the scripts share, one module per job; each imports only the modules listed above it:

errors         InputError, and the one scrubber that keeps tokens out of every message
outputs        result files written atomically
runs           the output folder: the run record and lock, complete checkpoints, resuming and rotation
cli            the command line and recipe files, one-line errors, the per-phase wall time
arguments      the shared argument dataclasses, their checks, and the speed settings chosen for the machine
data           reading and validating data files, Hub splits, sample limits, tokenization in processes
model_checks   what a loaded model and tokenizer must be: the weights of every layer a run uses, its vocabulary
modeling       loading the tokenizer, config and model, and the checks that need them
metric_arrays  metrics along the last axis of per-example arrays (one run, or many resamples at once)
resampling     bootstrap and permutation resamples of per-example arrays
stats          95% intervals of a run's metrics, and whether two runs differ beyond noise
seed_summary   one recipe over several seeds: the summary, its table and chart
report         the self-contained HTML failure pages
qa_report      SQuAD's per-question failure rows and scores
card           the model card, from the TaskCard each task hands it
tasks/         one module per task, which the modules below ask and never name (tasks/__init__.py)
hub            where the card goes, what is pushed, push errors
trainer        the Trainer subclass, training and saving, the end of a run
"""

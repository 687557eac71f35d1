"""What run_glue_sst2.py and run_squad.py share, one module per job; each imports only the modules listed above it:

cli        the command line and recipe files, one-line errors, secrets kept out of messages
arguments  the argument dataclasses, their checks, and the speed settings chosen for the machine
data       reading and validating data files, Hub splits, sample limits, tokenization in processes
modeling   loading the tokenizer, config and model, and the checks that need them
outputs    atomic result files, the checkpoint and resume policy
runs       who owns an output folder: the run record, the lock, the folders a run must not write into
card       the model card, from the TaskCard each script hands it
hub        where the card goes, what is pushed, push errors
trainer    the Trainer subclass, training and saving, the end of a run
"""

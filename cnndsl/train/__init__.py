"""Training: `cnndsl train`, `eval` and `predict` (issue 4).

    recipe.py      the training recipe: defaults, the TOML file beside a spec, overrides
    errors.py      the user-facing errors (no torch)
    cli.py         the click commands; torch is imported inside them, never at import
    optimization.py optimizer, loss, learning-rate schedule from a recipe
    checkpoint.py  safetensors checkpoints with JSON metadata, no pickle anywhere
    distributed.py torchrun / DistributedDataParallel plumbing
    loop.py        the training loop: epochs, validation, checkpoints, resume, signals
    progress.py    tqdm on a terminal, plain lines otherwise
    inference.py   rebuilding a model from a checkpoint; eval and predict
    tasks.py       segmentation or localisation, from the data and the model's outputs
    losses.py      the dense tasks' losses (per-pixel cross-entropy, Dice, smooth L1 on boxes)
    metrics.py     mean IoU, pixel accuracy, box IoU, as sums the ranks add up

The data side lives in `cnndsl.data`. Importing this package imports neither torch nor
numpy.
"""

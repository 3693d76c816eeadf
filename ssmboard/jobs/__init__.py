"""Running evaluations: the runner (build a variant, measure it point by point), where rows go
(the store or a file), and the `ssmboard eval` command. The queue, workers, schedules and Slurm
executors join here."""

"""Train: ResNet18 on packed splits. model (the network, safetensors save and load), augment
(the callable train/eval presets), fit (train_one_epoch / evaluate, early stopping, resume),
checkpoint, device (bf16 and memory format), ensemble and fused_members (fold members served as
one network), package (a trained model as the files a run publishes). Used by: evaluate, serve,
bench, tasks."""

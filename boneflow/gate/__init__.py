"""Gate: whether a candidate may replace the champion. decision (judge / decide, the
GateDecision contract, GATE_REJECTED), paired (McNemar's exact test and the accuracy-difference
interval against the champion on the same radiographs). Its policy, GatePolicy, is in
boneflow/settings.py. Used by: report, cli, tasks."""

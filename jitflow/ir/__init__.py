"""The intermediate representation shared by the compiler and the code generators.

`cluster` holds the cluster IR (a fused group of ops as scalar nodes), `layout` the broadcast pattern a
kernel is specialized on. Nothing here imports `jitflow.compiler` or `jitflow.codegen`.
"""

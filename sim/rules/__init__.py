"""The clinical rules, one module per family, each rule one small scalar function.

Every rule takes plain numbers (months, probabilities, codes) and the uniforms it needs,
and is compiled with Numba through `sim.rules.compile.rule`; under `NUMBA_DISABLE_JIT=1`
the same source runs as plain Python. The engines draw the uniforms (purposes in
`sim.rules.purposes`) and call these functions; no rule draws a number itself.
"""

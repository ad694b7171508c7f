"""A small Transformer trained with optical DFA on generated sequence tasks.

    python examples/dfa_transformer.py --task sort --mode optical --epochs 5
    python examples/dfa_transformer.py --task markov --mode optical --epochs 12

``sort``: 8 random digits in, the sorted sequence out (every position predicts its sorted
token; non-causal attention). ``markov``: next-token prediction on sequences of a random
order-2 Markov chain over 8 symbols (causal attention, 2,000 training sequences as in
``benchmarks/dfa.py``); the chain's entropy rate is the best possible loss. The blocks are
post-norm, and a DFA marker after each block receives, for every token, the random
projection of that token's error (``token_dims=1``).
"""

from __future__ import annotations

from dfa_common import Transformer, describe, example_setup, markov_task, sort_task, train


def main() -> None:
    args, opu = example_setup(__doc__, epochs=5, task={"default": "sort", "choices": ["sort", "markov"]})
    if args.task == "sort":
        data = sort_task()
        model = Transformer(vocab=10, length=8, mode=args.mode, opu=opu, seed=args.seed)
    else:
        data, entropy = markov_task(n_train=2000, vocab=8)
        print(f"entropy rate of the chain (best possible loss): {entropy:.4f} nats per token")
        model = Transformer(vocab=8, length=16, causal=True, mode=args.mode, opu=opu, seed=args.seed)
    print(describe(train(model, data, epochs=args.epochs, lr=4e-3 if args.task == "markov" else 2e-3, cosine=args.task == "markov", seed=args.seed, log=print)))


if __name__ == "__main__":
    main()

"""Train a 2-layer graph convolutional network on a Cora-like stochastic block model graph with BP or DFA.

    python examples/dfa_gcn.py --mode optical --epochs 100

The graph (2,708 nodes, 7 classes, bag-of-words features, Planetoid's split: 140 training,
500 validation and 1,000 test nodes) is generated with a seed, no download (see
``sbm_graph`` in ``dfa_common.py``). The GCN is ``A tanh(A X W1) W2`` with a DFA marker on
the hidden node features; full-batch Adam lr 0.01, weight decay 5e-4. ``--mode`` switches
the training rule only.
"""

from __future__ import annotations

from dfa_common import GCN, describe, example_setup, sbm_graph, train_graph


def main() -> None:
    args, opu = example_setup(__doc__, epochs=100)
    graph = sbm_graph()
    model = GCN(graph.x.shape[1], mode=args.mode, opu=opu, seed=args.seed)
    print(describe(train_graph(model, graph, epochs=args.epochs, seed=args.seed, log=print)))


if __name__ == "__main__":
    main()

"""NeuralGrok: meta-learned gradient amplification for fast grokking."""

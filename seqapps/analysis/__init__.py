"""Looking inside: hidden states and gates, gradient flow, metrics, plots."""

"""Imitation policies on frozen DynaMo embeddings (kNN, MLP), their training, the policy node and closed-loop evaluation."""

"""word_vectors — skip-gram word vectors (word2vec) trained on unlabeled text."""

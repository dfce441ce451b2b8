"""Evaluation: a model scored on recipe data (:mod:`.evaluate`), and the end-of-run evaluation
that writes ``results.json`` (:mod:`.final_eval`)."""

"""Dataset downloads (issue #17): the catalogue model (:mod:`.sources`), HTTP transfers
(:mod:`.http`), safe extraction (:mod:`.extract`), Hugging Face hub files (:mod:`.hub`) and the
parallel engine (:mod:`.engine`)."""

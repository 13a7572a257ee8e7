"""Sample transforms: reasoning ON/OFF pairing, thinking truncation, dedup, decontamination."""

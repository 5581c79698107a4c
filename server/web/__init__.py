"""HTML pages for people: profiles now, portfolios and the upload form later."""

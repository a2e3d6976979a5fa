"""Data quality: Great Expectations suites, their custom expectations and suite locations."""

"""Stage 3, `mvcap caption`: one caption per view, from a category-guided prompt."""

"""The bottom layer every moesearch package may import: things shared by all of them and owned by none (errors)."""

"""The staff workspace: one generic list page and one generic record page for every form,
generated from the form's metadata and served through the same services as the API."""

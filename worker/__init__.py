"""The sales-qualification worker."""

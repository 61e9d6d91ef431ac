"""What a bank's answers mean: figures on labelled images, words for the CLI and pages, the HTML report, the odd images of a dataset."""

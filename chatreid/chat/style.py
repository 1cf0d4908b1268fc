"""What the chat page looks like beyond Gradio's theme: ``CSS``, passed to ``launch``."""

# Result captions are shown whole (wrapped), never cut: the person id is at the end of the file
# name, and that is how a person checks a match by eye. The ranked gallery's columns follow the
# width (Gradio's ``columns`` is one number for every width, and its 100 px column minimum made
# 6 columns overflow a phone): 3 on a phone, 4 on a tablet, 6 on a desktop. The example cells
# are Gradio's max-content boxes at least 200 px wide; here they wrap inside their column.
CSS = """
#results .grid-container { grid-template-columns: repeat(6, minmax(0, 1fr)) !important; }
@media (max-width: 900px) {
    #results .grid-container { grid-template-columns: repeat(4, minmax(0, 1fr)) !important; } }
@media (max-width: 540px) {
    #results .grid-container { grid-template-columns: repeat(3, minmax(0, 1fr)) !important; } }
#results .caption-label { white-space: normal; overflow-wrap: anywhere; max-width: 100%;
                          text-overflow: clip; opacity: 0.9; }
#examples table { width: 100%; table-layout: fixed; }
#examples th, #examples th *, #examples td, #examples td * {
    white-space: normal !important; overflow-wrap: anywhere; text-overflow: clip !important; }
#examples td .container { min-width: 0 !important; width: auto !important; max-width: 100%; }
#examples td .container p { font-size: var(--text-md); }
#examples td .container img { max-width: 100%; }
"""


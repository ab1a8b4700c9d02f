"""Write the binary files of the fidelity corpus (tests/data/fidelity/): a DOCX and a PDF.

Run from the repository root: ``python tests/data/make_fidelity.py``. The outputs are
committed (a few KB each) so tests don't need fpdf2; re-run after changing this script.
The HTML page and the Markdown runbook are written by hand next to them.
"""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parent / "fidelity"


def make_docx(path: Path) -> None:
    import docx

    d = docx.Document()
    d.core_properties.title = "Board memo: field operations 2025"
    d.add_paragraph("Field operations board memo", style="Title")
    d.add_heading("Summary", level=1)
    d.add_paragraph("The board met on 14 March 2025 to settle the field operations plan for the year. "
                    "Three decisions were taken and each has one owner.")
    d.add_heading("Decisions", level=1)
    table = d.add_table(rows=1, cols=3)
    for cell, text in zip(table.rows[0].cells, ["Decision", "Owner", "Due"]):
        cell.text = text
    for row in [("Hire 25 additional field technicians", "Oliver Strand", "30 June 2025"),
                ("Replace the depot roof in Lviv", "Marta Kowalska", "15 September 2025"),
                ("Move the call centre to the new building", "Ade Bello", "1 December 2025")]:
        cells = table.add_row().cells
        for cell, text in zip(cells, row):
            cell.text = text
    d.add_heading("Risks", level=2)
    d.add_paragraph("Hiring may be slowed by the regional labour shortage.", style="List Bullet")
    d.add_paragraph("The roofing contractor has not confirmed a start date.", style="List Bullet")
    d.add_heading("Budget", level=2)
    d.add_paragraph("The hiring plan costs 1.2 million euros a year once all technicians are in post.")
    d.save(path)


def make_pdf(path: Path) -> None:
    from fpdf import FPDF

    class Report(FPDF):
        def header(self):
            self.set_font("Helvetica", size=9)
            self.cell(0, 8, "Northport Harbour Authority - Annual report 2024", align="C")
            self.ln(12)

        def footer(self):
            self.set_y(-15)
            self.set_font("Helvetica", size=9)
            self.cell(0, 8, f"Page {self.page_no()} of {{nb}}", align="C")

    pdf = Report()
    pdf.set_title("Northport Harbour annual report 2024")
    pdf.set_author("Northport Harbour Authority")

    def heading(text):
        pdf.set_font("Helvetica", style="B", size=16)
        pdf.cell(0, 10, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)

    def lines(*texts, gap=True):
        for text in texts:
            pdf.cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
        if gap:
            pdf.ln(4)

    pdf.add_page()
    heading("Harbour traffic")
    lines("The harbour handled 4,812 ship calls in 2024, eleven per cent more than in the previous",
          "year. Most of the growth came from the new ferry service to the islands, which started",
          "in May and runs four times a day.")
    lines("Dredging of the inner basin was completed in October. The works were delayed by the",
          "discovery of an unexploded mine, which the navy removed after a three-day evac-",
          "uation of the quay.")
    heading("Lighthouse restoration")
    lines("The lighthouse closed to visitors on 1 September 2024 for the restoration of the lamp",
          "room. The original lens was sent to a specialist work-",
          "shop in Glasgow for cleaning.")
    pdf.add_page()
    lines("The lighthouse reopens to visitors on 14 June 2025, in time for the summer season.",
          "Guided tours will run every hour from ten in the morning.")
    heading("Fees for 2025")
    pdf.set_font("Helvetica", size=11)
    with pdf.table(col_widths=(60, 40, 40), text_align="LEFT") as table:
        for row in [("Vessel type", "Berth fee", "Pilotage"),
                    ("Ferry", "120 euros", "Included"),
                    ("Cargo ship", "640 euros", "310 euros"),
                    ("Yacht", "35 euros", "Not required")]:
            r = table.row()
            for cell in row:
                r.cell(cell)
    pdf.ln(6)
    lines("Fees are reviewed every January by the harbour board.")
    pdf.add_page()
    heading("Staff")
    lines("The authority employed 212 people at the end of the year, including 18 pilots.")
    pdf.output(str(path))


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    make_docx(OUT / "board-memo.docx")
    make_pdf(OUT / "harbour-report.pdf")
    print("wrote", *(p.name for p in sorted(OUT.iterdir())))

/* gridlib book: figures stay legible at every width (checked by tests/browser/check_pages.py,
   kind small-figure, at 1280 px and at 390 px). Loaded on every page: Jupyter Book adds each .js
   file of _static to html_js_files.

   The book's figures are drawn for its 688 px column at 110 dpi (gridlib.plotting.STYLE), where
   their 9-pt labels are 13.75 px tall. A phone's column is about 360 px: scaled to fit it, the
   labels would be 7 px. So on a narrow screen each output figure keeps at least MIN_SCALE of its
   natural width and scrolls sideways inside its own box. Everywhere, a figure is a link to its
   image file, which a reader can open and zoom at full size. */

(() => {
  const MIN_SCALE = 0.75;  // 9-pt labels stay >= 10 px
  const narrow = window.matchMedia('(max-width: 720px)');

  const wrap = img => {
    if (img.closest('a')) return;
    const link = document.createElement('a');
    link.className = 'gridlib-figure';
    link.href = img.currentSrc || img.src;
    link.title = 'Open the figure at full size';
    img.replaceWith(link);
    link.append(img);
  };

  const fit = img => {
    if (!img.naturalWidth) return;
    const box = img.parentElement.clientWidth;
    const width = Math.min(img.naturalWidth, Math.max(box, MIN_SCALE * img.naturalWidth));
    img.style.maxWidth = narrow.matches && width > box ? 'none' : '';
    img.style.width = narrow.matches && width > box ? `${Math.round(width)}px` : '';
  };

  const figures = () => [...document.querySelectorAll('div.cell_output img')];

  const start = () => {
    for (const img of figures()) {
      wrap(img);
      if (img.complete) fit(img);
      else img.addEventListener('load', () => fit(img), {once: true});
    }
    narrow.addEventListener('change', () => figures().forEach(fit));
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();

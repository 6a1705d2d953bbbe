"""The console's static files (index.html, the modules, the style), served by api/console.py."""

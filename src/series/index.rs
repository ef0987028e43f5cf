//! A mirror's directory index, read into the names it lists. Pure and tolerant: the page is
//! untrusted text from a web server, so anything that is not a plain link to a child of the
//! folder is passed over, and at most [`MAX_NAMES`] names are kept.
//!
//! Three kinds of page cover the mirrors distributions use:
//! - HTML autoindex pages: Apache's (`<a href="0.6.3/">`, plus sort links `?C=N;O=D`), nginx's
//!   (`<a href="20241201-1949/">`), Python's http.server (`<li><a href="...">`); hrefs may be
//!   relative, absolute paths or whole URLs, percent-encoded and HTML-escaped;
//! - plain lists: one name a line, folders ending in `/`, as some mirrors publish beside
//!   their HTML (and as glint lists a local folder).
//!
//! Folders are told from files by the trailing `/` every autoindex puts on them.

/// The most names glint takes from one index page; a mirror's folder of releases holds a few
/// hundred at most.
pub const MAX_NAMES: usize = 10_000;

/// One name an index lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The name, decoded, without a trailing `/`.
    pub name: String,
    pub folder: bool,
}

/// The children of `folder` that `page` lists, in page order, each once.
pub fn names(folder: &url::Url, page: &str) -> Vec<Listed> {
    let links = hrefs(page);
    let candidates: Vec<String> = if links.is_empty() && !page.contains('<') {
        page.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.contains(char::is_whitespace))
            .map(str::to_string)
            .collect()
    } else {
        links
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut found = Vec::new();
    for candidate in candidates {
        let Some(listed) = child(folder, &candidate) else {
            continue;
        };
        if seen.insert(listed.name.clone()) {
            found.push(listed);
            if found.len() == MAX_NAMES {
                break;
            }
        }
    }
    found
}

/// The values of every `href` attribute, unescaped, in page order.
fn hrefs(page: &str) -> Vec<String> {
    let lower = page.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find("href") {
        let start = from + at + "href".len();
        from = start;
        let rest = page[start..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(quote @ ('"' | '\'')) => rest[1..].split(quote).next(),
            Some(_) => rest.split(|c: char| c.is_whitespace() || c == '>').next(),
            None => None,
        };
        if let Some(value) = value {
            found.push(unescape(value));
        }
        if found.len() > MAX_NAMES * 2 {
            break;
        }
    }
    found
}

/// The few HTML escapes index pages use in hrefs.
fn unescape(value: &str) -> String {
    value
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The child of `folder` a link points at, if it points at one directly (not at the parent,
/// a sort link, another host or a grandchild).
fn child(folder: &url::Url, href: &str) -> Option<Listed> {
    if href.starts_with('?') || href.starts_with('#') {
        return None;
    }
    let target = folder.join(href).ok()?;
    if target.query().is_some() || target.fragment().is_some() {
        return None;
    }
    if target.scheme() != folder.scheme()
        || target.host_str() != folder.host_str()
        || target.port_or_known_default() != folder.port_or_known_default()
    {
        return None;
    }
    let rest = target.path().strip_prefix(folder.path())?;
    let (encoded, folder_link) = match rest.strip_suffix('/') {
        Some(name) => (name, true),
        None => (rest, false),
    };
    if encoded.is_empty() || encoded.contains('/') {
        return None;
    }
    let name = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()?
        .into_owned();
    if name == "." || name == ".." || name.contains('/') {
        return None;
    }
    Some(Listed {
        name,
        folder: folder_link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(text: &str) -> url::Url {
        url::Url::parse(text).unwrap()
    }

    fn listed(found: &[Listed]) -> Vec<(String, bool)> {
        found.iter().map(|l| (l.name.clone(), l.folder)).collect()
    }

    fn entries(rows: &[(&str, bool)]) -> Vec<(String, bool)> {
        rows.iter().map(|(n, f)| (n.to_string(), *f)).collect()
    }

    #[test]
    fn nginx_autoindex_lists_folders_and_files_but_not_the_parent() {
        let page = "<html>\r\n<head><title>Index of /images/cloud/bookworm/</title></head>\r\n<body>\r\n<h1>Index of /images/cloud/bookworm/</h1><hr><pre><a href=\"../\">../</a>\r\n<a href=\"20241110-1910/\">20241110-1910/</a>                                     10-Nov-2024 19:22                   -\r\n<a href=\"20241201-1949/\">20241201-1949/</a>                                     01-Dec-2024 20:01                   -\r\n<a href=\"daily/\">daily/</a>                                             05-Dec-2024 02:11                   -\r\n<a href=\"latest/\">latest/</a>                                            01-Dec-2024 20:01                   -\r\n</pre><hr></body>\r\n</html>\r\n";
        let found = names(
            &folder("https://cloud.debian.org/images/cloud/bookworm/"),
            page,
        );
        assert_eq!(
            listed(&found),
            entries(&[
                ("20241110-1910", true),
                ("20241201-1949", true),
                ("daily", true),
                ("latest", true)
            ])
        );
    }

    #[test]
    fn apache_autoindex_sort_links_icons_and_absolute_paths_are_passed_over() {
        let page = r#"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
<html><head><title>Index of /0.6.3</title></head><body><h1>Index of /0.6.3</h1>
<table><tr><th valign="top"><img src="/icons/blank.gif" alt="[ICO]"></th><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th></tr>
<tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td><td><a href="/">Parent Directory</a></td></tr>
<tr><td><a href="MD5SUMS">MD5SUMS</a></td></tr>
<tr><td><a href="/0.6.3/cirros-0.6.3-x86_64-disk.img">cirros-0.6.3-x86_64-disk.img</a></td></tr>
<tr><td><a href="https://download.cirros-cloud.net/0.6.3/SHA256SUMS">SHA256SUMS</a></td></tr>
<tr><td><a href="https://elsewhere.example/0.6.3/evil.img">evil.img</a></td></tr>
<tr><td><a href="sub/deeper.img">deeper</a></td></tr>
</table></body></html>"#;
        let found = names(&folder("https://download.cirros-cloud.net/0.6.3/"), page);
        assert_eq!(
            listed(&found),
            entries(&[
                ("MD5SUMS", false),
                ("cirros-0.6.3-x86_64-disk.img", false),
                ("SHA256SUMS", false)
            ])
        );
    }

    #[test]
    fn python_http_server_pages_are_percent_decoded_and_unescaped() {
        let page = "<!DOCTYPE HTML>\n<html lang=\"en\">\n<head><title>Directory listing for /</title></head>\n<body>\n<h1>Directory listing for /</h1>\n<hr>\n<ul>\n<li><a href=\"Fedora-Cloud-41-1.4-x86_64-CHECKSUM\">Fedora-Cloud-41-1.4-x86_64-CHECKSUM</a></li>\n<li><a href=\"a%20b%2Bc.img\">a b+c.img</a></li>\n<li><a href=\"x&amp;y/\">x&amp;y/</a></li>\n</ul>\n<hr>\n</body>\n</html>\n";
        let found = names(&folder("http://127.0.0.1:8000/"), page);
        assert_eq!(
            listed(&found),
            entries(&[
                ("Fedora-Cloud-41-1.4-x86_64-CHECKSUM", false),
                ("a b+c.img", false),
                ("x&y", true)
            ])
        );
    }

    #[test]
    fn a_plain_list_is_one_name_a_line() {
        let found = names(
            &folder("file:///srv/mirror/"),
            "0.6.2/\n0.6.3/\n\nMD5SUMS\nnot a name\n../\n",
        );
        assert_eq!(
            listed(&found),
            entries(&[("0.6.2", true), ("0.6.3", true), ("MD5SUMS", false)])
        );
    }

    #[test]
    fn junk_pages_and_broken_links_give_nothing_rather_than_an_error() {
        let base = folder("https://mirror.example/x/");
        for page in [
            "",
            "<html>Not Found</html>",
            "<a href=",
            "<a href=\"%ff%fe/\">bad utf-8</a>",
            "<a href='?C=S;O=A'>",
            "<a href=\"javascript:alert(1)\">",
            "<a href=\"//other.example/x/a.img\">",
        ] {
            assert_eq!(names(&base, page), Vec::new(), "{page:?}");
        }
    }

    #[test]
    fn a_page_with_more_links_than_the_bound_keeps_the_first_ones() {
        let page: String = (0..MAX_NAMES + 50)
            .map(|n| format!("<a href=\"{n}/\">{n}/</a>\n"))
            .collect();
        let found = names(&folder("https://mirror.example/"), &page);
        assert_eq!(found.len(), MAX_NAMES);
        assert_eq!(found[0].name, "0");
    }
}

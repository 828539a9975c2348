-- A small shop schema that uses most of what MariaDB schemas hold.
CREATE TABLE customer (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(190) NOT NULL,
  full_name VARCHAR(200) NOT NULL COMMENT 'as the customer wrote it',
  profile JSON NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP,
  UNIQUE KEY uq_customer_email (email),
  FULLTEXT KEY ft_customer_name (full_name)
) ENGINE=InnoDB COMMENT='people who buy';

CREATE TABLE product (
  sku CHAR(12) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  title VARCHAR(255) NOT NULL,
  price_cents INT NOT NULL CHECK (price_cents >= 0),
  vat_rate DECIMAL(4,3) NOT NULL DEFAULT 0.200,
  price_with_vat DECIMAL(12,2) AS (price_cents * (1 + vat_rate) / 100) VIRTUAL,
  status ENUM('draft','live','retired') NOT NULL DEFAULT 'draft',
  KEY ix_product_title (title(40))
) ENGINE=InnoDB;

CREATE TABLE `order` (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id INT UNSIGNED NOT NULL,
  placed_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  total_cents INT NOT NULL DEFAULT 0,
  CONSTRAINT fk_order_customer FOREIGN KEY (customer_id) REFERENCES customer (id) ON DELETE RESTRICT ON UPDATE CASCADE,
  KEY ix_order_placed (placed_at DESC)
) ENGINE=InnoDB;

CREATE TABLE order_line (
  order_id BIGINT UNSIGNED NOT NULL,
  line_no SMALLINT UNSIGNED NOT NULL,
  sku CHAR(12) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  quantity INT NOT NULL DEFAULT 1,
  PRIMARY KEY (order_id, line_no),
  CONSTRAINT fk_line_order FOREIGN KEY (order_id) REFERENCES `order` (id) ON DELETE CASCADE,
  CONSTRAINT fk_line_product FOREIGN KEY (sku) REFERENCES product (sku),
  CONSTRAINT ck_line_quantity CHECK (quantity > 0)
) ENGINE=InnoDB;

CREATE TABLE audit_log (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  happened_at DATE NOT NULL,
  message TEXT,
  PRIMARY KEY (id, happened_at)
) ENGINE=InnoDB
PARTITION BY RANGE COLUMNS (happened_at) (
  PARTITION p2025 VALUES LESS THAN ('2026-01-01'),
  PARTITION pmax VALUES LESS THAN (MAXVALUE)
);

CREATE VIEW live_product AS SELECT sku, title, price_with_vat FROM product WHERE status = 'live';

CREATE VIEW customer_revenue AS
  SELECT c.id, c.email, SUM(o.total_cents) AS revenue_cents
  FROM customer c JOIN `order` o ON o.customer_id = c.id GROUP BY c.id, c.email;

CREATE FUNCTION cents_to_text(cents INT) RETURNS VARCHAR(32) DETERMINISTIC
  RETURN CONCAT(FLOOR(cents / 100), '.', LPAD(MOD(cents, 100), 2, '0'));

CREATE PROCEDURE recalc_order_total(IN p_order BIGINT UNSIGNED)
  MODIFIES SQL DATA
BEGIN
  UPDATE `order` o
     SET o.total_cents = (SELECT COALESCE(SUM(l.quantity * p.price_cents), 0)
                            FROM order_line l JOIN product p ON p.sku = l.sku
                           WHERE l.order_id = p_order)
   WHERE o.id = p_order;
END;

CREATE TRIGGER order_line_after_insert AFTER INSERT ON order_line FOR EACH ROW
  CALL recalc_order_total(NEW.order_id);

CREATE EVENT purge_old_audit ON SCHEDULE EVERY 1 DAY STARTS '2026-01-01 03:00:00'
  DO DELETE FROM audit_log WHERE happened_at < CURRENT_DATE - INTERVAL 1 YEAR;
